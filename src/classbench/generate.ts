/**
 * ClassBench-style inputs: header traces drawn from a rule set (pick a rule,
 * a random point inside it, repeat it a Pareto-distributed number of times,
 * as ClassBench's trace generator does), and larger rule sets synthesised
 * with the field distributions of a seed set (each field of a new rule is
 * taken from a randomly chosen seed rule, so marginal distributions and
 * overlaps stay those of the seed).
 */
import { Policy, Rule, Conditions, Prefix } from '../policy/model';
import { Trace } from './classbench';

/** A small seeded PRNG (sfc32). */
export class Random {
  private a = 0x9e3779b9; private b = 0x243f6a88; private c: number; private d = 1;
  constructor(seed: number) { this.c = seed >>> 0; for (let i = 0; i < 15; i++) this.u32(); }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) + t | 0;
    return t >>> 0;
  }
  below(n: number): number { return Math.floor((this.u32() / 4294967296) * n); }
  unit(): number { return this.u32() / 4294967296; }
}

function prefixOf(c: Conditions['src']): Prefix | null {
  if (!c || 'sets' in c) return null;
  const it = c.values[0];
  return it && it.kind === 'prefix' ? it.prefix : null;
}

function pointIn(p: Prefix | null, r: Random): number {
  if (!p) return r.u32();
  const base = ((p.bytes[0] << 24) >>> 0) + (p.bytes[1] << 16) + (p.bytes[2] << 8) + p.bytes[3];
  const span = 2 ** (32 - p.length);
  return base + Math.floor(r.unit() * span);
}

function inRange(c: Conditions['sport'], r: Random): number {
  if (!c) return r.below(65536);
  const v = c.values[0];
  return v.lo + r.below(v.hi - v.lo + 1);
}

/** `count` headers; repeats follow a Pareto law (shape a, scale b), ClassBench's defaults a = 1, b = 0.1 scaled to whole repeats. */
export function generateTrace(policy: Policy, count: number, seed = 1, pareto = { a: 1, b: 1 }): Trace {
  const r = new Random(seed);
  const tuples = new Uint32Array(count * 5);
  const expected = new Int32Array(count);
  let n = 0;
  while (n < count) {
    const index = r.below(policy.rules.length);
    const c = policy.rules[index].conditions;
    const proto = c.proto ? c.proto.values[r.below(c.proto.values.length)] : [6, 17][r.below(2)];
    const t = [pointIn(prefixOf(c.src), r), pointIn(prefixOf(c.dst), r), inRange(c.sport, r), inRange(c.dport, r), proto];
    const repeats = Math.min(1000, Math.max(1, Math.floor(pareto.b / Math.pow(1 - r.unit(), 1 / pareto.a))));
    for (let k = 0; k < repeats && n < count; k++, n++) {
      tuples.set(t, n * 5);
      expected[n] = index;
    }
  }
  return { tuples, expected, count };
}

/** A rule set of `count` rules with the seed set's field distributions. */
export function synthesizeRules(seed: Policy, count: number, rngSeed = 1): Policy {
  const r = new Random(rngSeed);
  const pick = (): Conditions => seed.rules[r.below(seed.rules.length)].conditions;
  const rules: Rule[] = [];
  for (let i = 0; i < count; i++) {
    const c: Conditions = { family: 4 };
    const src = pick().src, dst = pick().dst, ports = pick(), proto = pick().proto;
    if (src) c.src = src;
    if (dst) c.dst = dst;
    if (ports.sport) c.sport = ports.sport;
    if (ports.dport) c.dport = ports.dport;
    if (proto) c.proto = proto;
    rules.push({ name: null, line: i + 1, column: 1, conditions: c, action: { type: 'accept' } });
  }
  return { source: `${seed.source} x${count}`, default: 'drop', rules, sets: new Map() };
}

/**
 * The same synthesis on ClassBench text: a rule file of `count` lines whose
 * source, destination, port pair and protocol each come from a randomly
 * chosen line of `seed` (the format other ClassBench tools, and DPDK's
 * test-acl, read). Comment and blank lines of the seed are ignored.
 */
export function synthesizeClassbenchText(seed: string, count: number, rngSeed = 1): string {
  const lines = seed.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('@'));
  if (lines.length === 0) throw new Error('the seed has no ClassBench rules');
  const fields = lines.map((l) => {
    const m = /^@(\S+)\s+(\S+)\s+(\d+\s*:\s*\d+)\s+(\d+\s*:\s*\d+)\s+(0x[0-9a-fA-F]+\/0x[0-9a-fA-F]+)(\s+0x[0-9a-fA-F]+\/0x[0-9a-fA-F]+)?\s*$/.exec(l);
    if (!m) throw new Error(`not a ClassBench rule: ${l}`);
    return { src: m[1], dst: m[2], ports: `${m[3]}\t${m[4]}`, proto: m[5] };
  });
  const r = new Random(rngSeed);
  const pick = (): (typeof fields)[number] => fields[r.below(fields.length)];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const src = pick().src, dst = pick().dst, ports = pick().ports, proto = pick().proto;
    out.push(`@${src}\t${dst}\t${ports}\t${proto}\t0x0000/0x0000`);
  }
  return out.join('\n') + '\n';
}
