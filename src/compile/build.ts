/**
 * Decision table construction: per-field equivalence classes with rule
 * bit-vectors (the bit-vector scheme of Lakshman and Stiliadis, as in
 * nftables' pipapo), built per address family.
 *
 * For one field, every rule's accepted keys are a few intervals. Sweeping all
 * interval ends in key order cuts the domain into elementary intervals; all
 * keys of an elementary interval are accepted by the same rules, recorded as
 * one bit-vector (bit r set = rule r accepts). Equal vectors are stored once.
 *
 * Worked example, field dport, three rules: r0 dport 500, r1 dport 0-1023,
 * r2 any port. Boundaries [500, 501, 1024] split the domain into
 *   [0,499] -> {r1,r2}  [500,500] -> {r0,r1,r2}  [501,1023] -> {r1,r2}
 *   [1024,65536] -> {r2}
 * and three distinct vectors remain (classes 0,1,0,2). A lookup binary-
 * searches the boundaries (log2 of their count), takes the class's vector,
 * and ANDs the vectors of all fields with the family's base vector: the lowest
 * set bit is the first rule whose interval conditions all hold. Residual
 * checks (marks under a mask, interfaces, named sets) then confirm or reject
 * that candidate, and the scan goes on from the next bit.
 *
 * Cost: lookup O(F log B + F * N/64) word operations for F fields, B
 * boundaries and N rules, with an early exit at the first matching word.
 * Build: O(F * (N log N + E * N/32)) for E elementary intervals; memory is
 * (distinct vectors) * N/8 bytes per field. docs/algorithm.md records the
 * measurements that chose this layout and its known limits.
 */
import { Field, fieldInfo } from './fields';
import { FamilyRule, Interval, Key } from './normalize';

export interface DimTable {
  field: Field;
  wide: boolean;
  /** Sorted, strictly increasing starts of elementary intervals 1..B. */
  boundaries: Key[];
  /** Vector index of each elementary interval (B + 1 entries). */
  classes: Uint32Array;
  /** Distinct vectors, each `words` u64 words as 2*words u32 (little-endian). */
  vectors: Uint32Array[];
}

export interface FamilyTable {
  words: number;
  base: Uint32Array;
  dims: DimTable[];
}

const cmp = (a: Key, b: Key): number => (a < b ? -1 : a > b ? 1 : 0);

function hashWords(v: Uint32Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < v.length; i++) {
    h ^= v[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function equalWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Build the table of one family from its normalised rules (null = cannot match). */
export function buildFamily(rules: (FamilyRule | null)[], family: 4 | 6): FamilyTable {
  const n = rules.length;
  const words = Math.ceil(n / 64);
  const u32s = words * 2;
  const base = new Uint32Array(u32s);
  rules.forEach((r, i) => { if (r) base[i >>> 5] |= 1 << (i & 31); });
  const fields = new Set<Field>();
  for (const r of rules) if (r) for (const f of r.dims.keys()) fields.add(f);
  const dims: DimTable[] = [];
  for (const field of [...fields].sort((a, b) => a - b)) {
    dims.push(buildDim(field, family, rules, u32s));
  }
  // Most selective fields first: the evaluator ANDs vectors in table order
  // and stops at the first zero word, so sparse vectors should come early.
  const density = new Map(dims.map((d) => [d, meanDensity(d)]));
  dims.sort((a, b) => density.get(a)! - density.get(b)!);
  return { words, base, dims };
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/** Mean set-bit count of the vectors an elementary interval points to. */
function meanDensity(d: DimTable): number {
  const bits = d.vectors.map((v) => v.reduce((n, w) => n + popcount32(w), 0));
  let total = 0;
  for (const c of d.classes) total += bits[c];
  return total / d.classes.length;
}

function buildDim(field: Field, family: 4 | 6, rules: (FamilyRule | null)[], u32s: number): DimTable {
  const info = fieldInfo(field, family);
  const zero: Key = info.wide ? 0n : 0;
  const top = info.max;
  // Events: (key, rule, +1 at lo / -1 past hi). Unconstrained rules cover all.
  const points: Key[] = [];
  const adds: { key: Key; rule: number; delta: number }[] = [];
  const always: number[] = [];
  rules.forEach((r, i) => {
    if (!r) return;
    const ivs = r.dims.get(field);
    if (!ivs) { always.push(i); return; }
    for (const iv of ivs) {
      adds.push({ key: iv.lo, rule: i, delta: 1 });
      if (iv.hi < top) {
        const end: Key = typeof iv.hi === 'bigint' ? iv.hi + 1n : (iv.hi as number) + 1;
        adds.push({ key: end, rule: i, delta: -1 });
      }
    }
  });
  adds.sort((a, b) => cmp(a.key, b.key));
  const cur = new Uint32Array(u32s);
  for (const i of always) cur[i >>> 5] |= 1 << (i & 31);
  const count = new Int32Array(rules.length);
  const vectors: Uint32Array[] = [];
  const byHash = new Map<number, number[]>();
  const classes: number[] = [];
  const snapshot = (): void => {
    const h = hashWords(cur);
    const bucket = byHash.get(h);
    if (bucket) {
      for (const idx of bucket) {
        if (equalWords(vectors[idx], cur)) { classes.push(idx); return; }
      }
    }
    const copy = cur.slice();
    vectors.push(copy);
    if (bucket) bucket.push(vectors.length - 1); else byHash.set(h, [vectors.length - 1]);
    classes.push(vectors.length - 1);
  };
  let k = 0;
  // Elementary interval starting at 0.
  while (k < adds.length && cmp(adds[k].key, zero) === 0) apply(adds[k++]);
  snapshot();
  while (k < adds.length) {
    const key = adds[k].key;
    while (k < adds.length && cmp(adds[k].key, key) === 0) apply(adds[k++]);
    // Merge with the previous interval when nothing changed (e.g. +1 and -1 at one key).
    const prev = vectors[classes[classes.length - 1]];
    if (equalWords(prev, cur)) continue;
    points.push(key);
    snapshot();
  }
  function apply(e: { rule: number; delta: number }): void {
    const c = (count[e.rule] += e.delta);
    if (c > 0) cur[e.rule >>> 5] |= 1 << (e.rule & 31);
    else cur[e.rule >>> 5] &= ~(1 << (e.rule & 31));
  }
  return { field, wide: info.wide, boundaries: points, classes: Uint32Array.from(classes), vectors };
}
