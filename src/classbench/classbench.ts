/**
 * ClassBench rule sets and header traces.
 *
 * Rules, one per line, first match wins (tab or space separated):
 *   @SRC/LEN  DST/LEN  SPORT_LO : SPORT_HI  DPORT_LO : DPORT_HI  0xPROTO/0xMASK  0xFLAGS/0xMASK
 * The TCP flags field is ignored. Traces, one header per line:
 *   SRC DST SPORT DPORT PROTO FLAGS [RULE]   (addresses as unsigned 32-bit integers)
 * A ClassBench rule becomes a policy rule with action accept and no name, so
 * its label is its 1-based position; `classify --classbench` prints 0-based
 * indices as ClassBench tools do.
 */
import { Policy, Rule, Conditions } from '../policy/model';
import { parsePrefix } from '../policy/values';
import { PolicyError, readInputFile } from '../policy/parse';

export function loadClassbenchRules(file: string): Policy {
  return parseClassbenchRules(readInputFile(file), file);
}

export function parseClassbenchRules(text: string, file = '<classbench>'): Policy {
  const rules: Rule[] = [];
  const errors: { file: string; line: number; column: number; message: string }[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const m = /^@(\S+)\s+(\S+)\s+(\d+)\s*:\s*(\d+)\s+(\d+)\s*:\s*(\d+)\s+0x([0-9a-fA-F]+)\/0x([0-9a-fA-F]+)(?:\s+0x[0-9a-fA-F]+\/0x[0-9a-fA-F]+)?\s*$/.exec(line);
    if (!m) {
      errors.push({ file, line: i + 1, column: 1, message: 'not a ClassBench rule (@SRC/LEN DST/LEN LO : HI LO : HI 0xPROTO/0xMASK 0xFLAGS/0xMASK)' });
      return;
    }
    try {
      const c: Conditions = {};
      const src = parsePrefix(m[1]);
      const dst = parsePrefix(m[2]);
      if (src.family !== 4 || dst.family !== 4) throw new Error('ClassBench rules are IPv4');
      c.family = 4;
      if (src.length > 0) c.src = { negate: false, values: [{ kind: 'prefix', prefix: src }] };
      if (dst.length > 0) c.dst = { negate: false, values: [{ kind: 'prefix', prefix: dst }] };
      const ports = [[+m[3], +m[4]], [+m[5], +m[6]]];
      for (const [k, [lo, hi]] of [['sport', ports[0]], ['dport', ports[1]]] as const) {
        if (lo > hi || hi > 65535) throw new Error(`bad ${k} range ${lo} : ${hi}`);
        if (lo !== 0 || hi !== 65535) c[k] = { negate: false, values: [{ lo, hi }] };
      }
      const proto = parseInt(m[7], 16), mask = parseInt(m[8], 16);
      if (proto > 255 || mask > 255) throw new Error('protocol out of range');
      if (mask !== 0) {
        const values: number[] = [];
        for (let v = 0; v < 256; v++) if ((v & mask) === (proto & mask)) values.push(v);
        c.proto = { negate: false, values };
      }
      rules.push({ name: null, line: i + 1, column: 1, conditions: c, action: { type: 'accept' } });
    } catch (e) {
      errors.push({ file, line: i + 1, column: 1, message: (e as Error).message });
    }
  });
  if (errors.length) throw new PolicyError(errors);
  return { source: file, default: 'drop', rules, sets: new Map() };
}

export interface Trace {
  /** 5 numbers per header: src, dst, sport, dport, proto. */
  tuples: Uint32Array;
  /** Rule number recorded in the trace (ClassBench's own, as given), or -1. */
  expected: Int32Array;
  count: number;
}

export function loadTrace(file: string): Trace {
  const text = readInputFile(file);
  const lines = text.split('\n');
  const tuples = new Uint32Array(lines.length * 5);
  const expected = new Int32Array(lines.length);
  let n = 0;
  lines.forEach((raw, i) => {
    const parts = raw.trim().split(/\s+/);
    if (parts.length === 1 && parts[0] === '') return;
    if (parts.length < 5) throw new PolicyError([{ file, line: i + 1, column: 1, message: 'a trace line is SRC DST SPORT DPORT PROTO [FLAGS] [RULE]' }]);
    const v = parts.slice(0, 5).map(Number);
    const max = [0xffffffff, 0xffffffff, 65535, 65535, 255];
    v.forEach((x, k) => {
      if (!Number.isInteger(x) || x < 0 || x > max[k]) throw new PolicyError([{ file, line: i + 1, column: 1, message: `field ${k + 1} '${parts[k]}' is not a number from 0 to ${max[k]}` }]);
    });
    tuples.set(v, n * 5);
    expected[n] = parts.length >= 7 ? Number(parts[6]) : -1;
    n++;
  });
  return { tuples: tuples.subarray(0, n * 5), expected: expected.subarray(0, n), count: n };
}
