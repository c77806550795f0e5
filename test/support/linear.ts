/**
 * ClassBench rules packed for the native linear scan (native/testkit/linear.h, run by test/support/testkit.ts):
 * 7 u32 per rule. The baseline of `npm run bench` and the oracle of its
 * correctness gate.
 */
import { Policy, Prefix } from '../../src/policy/model';
import { Rng } from '../../src/craft';

function prefixRange(c: Policy['rules'][number]['conditions']['src']): [number, number] {
  if (!c || 'sets' in c) return [0, 0xffffffff];
  const it = c.values[0];
  if (it.kind !== 'prefix') throw new Error('ClassBench rules hold prefixes only');
  const p: Prefix = it.prefix;
  const lo = ((p.bytes[0] << 24) >>> 0) + (p.bytes[1] << 16) + (p.bytes[2] << 8) + p.bytes[3];
  return [lo, lo + 2 ** (32 - p.length) - 1];
}

export function packTupleRules(policy: Policy): Uint32Array {
  const out = new Uint32Array(policy.rules.length * 7);
  policy.rules.forEach((r, i) => {
    const c = r.conditions;
    const [slo, shi] = prefixRange(c.src);
    const [dlo, dhi] = prefixRange(c.dst);
    const sp = c.sport ? c.sport.values[0] : { lo: 0, hi: 65535 };
    const dp = c.dport ? c.dport.values[0] : { lo: 0, hi: 65535 };
    let proto = 0, mask = 0;
    if (c.proto) {
      if (c.proto.values.length === 1) { proto = c.proto.values[0]; mask = 0xff; }
      else if (c.proto.values.length !== 256) throw new Error('only exact or wildcard protocols can be packed');
    }
    out.set([slo, shi, dlo, dhi, (sp.lo | (sp.hi << 16)) >>> 0, (dp.lo | (dp.hi << 16)) >>> 0, proto | (mask << 8)], i * 7);
  });
  return out;
}

/** Uniformly random 5-tuples (src, dst, sport, dport, proto): TCP, UDP or any protocol, a third each. */
export function randomTuples(rng: Rng, count: number): Uint32Array {
  const t = new Uint32Array(count * 5);
  for (let i = 0; i < count; i++) {
    const k = rng.int(3);
    t.set([rng.u32(), rng.u32(), rng.int(65536), rng.int(65536), k === 0 ? 6 : k === 1 ? 17 : rng.int(256)], i * 5);
  }
  return t;
}
