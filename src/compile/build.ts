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
 * measurements that chose this layout and its known limits. Narrow fields are
 * swept by the addon (native/compile/sweep.cc) when it loads, with the same
 * result byte for byte; the sweep below is its reference and serves 128-bit
 * keys. At load, the addon derives a lookup index from the table
 * (native/core/index.h) that replaces most of this lookup's searching and
 * ANDing; the table itself is what this file describes.
 */
import { Field, fieldInfo } from './fields';
import { FamilyRule, Interval, Key } from './normalize';
import { native } from '../native';

export interface DimTable {
  field: Field;
  wide: boolean;
  /** Sorted, strictly increasing starts of elementary intervals 1..B. */
  boundaries: Key[];
  /** Vector index of each elementary interval (B + 1 entries). */
  classes: Uint32Array;
  /**
   * Distinct vectors, back to back, each `words` u64 words as 2*words u32
   * (little-endian); or, from the native sweep, a function that writes them
   * and their summaries into the table (they stay in native memory until then).
   */
  vectors: Uint32Array | WriteVectors;
  vectorCount: number;
  /** Mean number of rules in the vector of an elementary interval (lower: more selective). */
  density: number;
}

/** Writes a dimension's vectors at vectorsOff of the table and their summaries at summariesOff, once. */
export type WriteVectors = (table: Uint8Array, vectorsOff: number, summariesOff: number) => void;

export interface FamilyTable {
  words: number;
  base: Uint32Array;
  dims: DimTable[];
}

const cmp = (a: Key, b: Key): number => (a < b ? -1 : a > b ? 1 : 0);

/** Whether pool[at, at + v.length) equals v. */
function equalAt(pool: Uint32Array, at: number, v: Uint32Array): boolean {
  for (let i = 0; i < v.length; i++) if (pool[at + i] !== v[i]) return false;
  return true;
}

/**
 * One field's intervals over a family's rules, in rule order: interval k is
 * [lo, hi] of rule owner[k]. Narrow keys sit in typed arrays (no object per
 * interval, and the addon reads them as they are); 128-bit keys in lists.
 */
export interface FieldIntervals {
  field: Field;
  wide: boolean;
  count: number;
  lo: Float64Array;
  hi: Float64Array;
  owner: Uint32Array;
  wideLo: Key[];
  wideHi: Key[];
}

/**
 * A family's normalised rules as the table needs them: per field, the
 * intervals of the rules that constrain it, and which rules can match at all.
 * Filled rule by rule, so the per-rule maps and interval objects of
 * normalize() die young instead of piling up for the whole compile.
 */
export class FamilyRules {
  readonly live: Uint8Array;
  readonly fields = new Map<Field, FieldIntervals>();
  constructor(readonly n: number, readonly family: 4 | 6) {
    this.live = new Uint8Array(n);
  }

  /** Rule i's normalised form (null: it cannot match in this family); rules are added in order. */
  add(i: number, rule: FamilyRule | null): void {
    if (!rule) return;
    this.live[i] = 1;
    for (const [field, ivs] of rule.dims) {
      let col = this.fields.get(field);
      if (!col) {
        const cap = Math.max(16, Math.min(this.n, 1 << 16));
        col = { field, wide: fieldInfo(field, this.family).wide, count: 0, lo: new Float64Array(cap), hi: new Float64Array(cap), owner: new Uint32Array(cap), wideLo: [], wideHi: [] };
        this.fields.set(field, col);
      }
      for (const iv of ivs) push(col, i, iv);
    }
  }

  /** Rules that can match but do not constrain the field: they accept every key. */
  always(col: FieldIntervals): Uint32Array {
    const out = new Uint32Array(this.n);
    let count = 0;
    for (let i = 0, k = 0; i < this.n; i++) {
      while (k < col.count && col.owner[k] < i) k++;
      if (this.live[i] && !(k < col.count && col.owner[k] === i)) out[count++] = i;
    }
    return out.subarray(0, count);
  }
}

function push(col: FieldIntervals, rule: number, iv: Interval): void {
  if (col.wide) {
    col.wideLo.push(iv.lo);
    col.wideHi.push(iv.hi);
  } else {
    if (col.count === col.lo.length) {
      const grow = <T extends Float64Array | Uint32Array>(a: T, make: (n: number) => T): T => { const b = make(a.length * 2); b.set(a); return b; };
      col.lo = grow(col.lo, (m) => new Float64Array(m));
      col.hi = grow(col.hi, (m) => new Float64Array(m));
    }
    col.lo[col.count] = iv.lo as number;
    col.hi[col.count] = iv.hi as number;
  }
  if (col.count === col.owner.length) {
    const bigger = new Uint32Array(col.owner.length * 2);
    bigger.set(col.owner);
    col.owner = bigger;
  }
  col.owner[col.count++] = rule;
}

/** Build the table of one family from its normalised rules. */
export function buildFamily(rules: FamilyRules, sweep?: 'native' | 'js'): FamilyTable {
  const n = rules.n;
  const words = Math.ceil(n / 64);
  const u32s = words * 2;
  const base = new Uint32Array(u32s);
  for (let i = 0; i < n; i++) if (rules.live[i]) base[i >>> 5] |= 1 << (i & 31);
  const dims: DimTable[] = [];
  for (const field of [...rules.fields.keys()].sort((a, b) => a - b)) {
    const col = rules.fields.get(field)!;
    const info = fieldInfo(field, rules.family);
    const fast = !info.wide && sweep !== 'js' ? nativeSweep(sweep === 'native') : null;
    dims.push(fast ? nativeDim(fast, col, info.max as number, rules) : buildDim(col, rules, u32s));
  }
  // Most selective fields first: the evaluator ANDs vectors in table order
  // and stops at the first zero word, so sparse vectors should come early.
  dims.sort((a, b) => a.density - b.density);
  return { words, base, dims };
}

type Addon = ReturnType<typeof native>;

/** The addon (for its sweep); null (the TypeScript one is used) when it does not load, unless it is required. */
function nativeSweep(required: boolean): Addon | null {
  try {
    return native();
  } catch (e) {
    if (required) throw e;
    return null;
  }
}

/** One narrow field through the addon's sweep (native/compile/sweep.h), same result as buildDim(). */
function nativeDim(addon: Addon, col: FieldIntervals, top: number, rules: FamilyRules): DimTable {
  const c = col.count;
  const out = addon.sweepFieldHeld(col.lo.subarray(0, c), col.hi.subarray(0, c), col.owner.subarray(0, c), rules.always(col), rules.n, top);
  const vectors: WriteVectors = (table, vOff, sOff) => addon.writeHeldVectors(out.held, table, vOff, sOff);
  return { field: col.field, wide: false, boundaries: Array.from(out.boundaries), classes: out.classes, vectors, vectorCount: out.vectorCount, density: out.density };
}

/** Rule events of one field, sorted by key: at keys[i], rule rules[i] enters (delta +1) or leaves (-1). */
interface Events { keys: Key[]; rules: Int32Array; deltas: Int8Array }

function narrowEvents(col: FieldIntervals, top: number): Events {
  // Encoded as key * 2^20 + rule * 2 + leaves: one native numeric sort, no objects.
  const codes = new Float64Array(2 * col.count);
  let m = 0;
  for (let k = 0; k < col.count; k++) {
    const i = col.owner[k];
    codes[m++] = col.lo[k] * 1048576 + i * 2;
    if (col.hi[k] < top) codes[m++] = (col.hi[k] + 1) * 1048576 + i * 2 + 1;
  }
  const sorted = codes.subarray(0, m).sort();
  const keys: number[] = new Array(sorted.length);
  const rs = new Int32Array(sorted.length);
  const ds = new Int8Array(sorted.length);
  for (let i = 0; i < sorted.length; i++) {
    const low = sorted[i] % 1048576;
    keys[i] = (sorted[i] - low) / 1048576;
    rs[i] = low >>> 1;
    ds[i] = low & 1 ? -1 : 1;
  }
  return { keys, rules: rs, deltas: ds };
}

function wideEvents(col: FieldIntervals, top: Key): Events {
  const adds: { key: Key; rule: number; delta: number }[] = [];
  for (let k = 0; k < col.count; k++) {
    const lo = col.wide ? col.wideLo[k] : col.lo[k], hi = col.wide ? col.wideHi[k] : col.hi[k];
    adds.push({ key: lo, rule: col.owner[k], delta: 1 });
    if (hi < top) adds.push({ key: typeof hi === 'bigint' ? hi + 1n : hi + 1, rule: col.owner[k], delta: -1 });
  }
  adds.sort((a, b) => cmp(a.key, b.key));
  return { keys: adds.map((a) => a.key), rules: Int32Array.from(adds, (a) => a.rule), deltas: Int8Array.from(adds, (a) => a.delta) };
}

/** A fixed pseudo-random 32-bit word per rule: vectors hash as the XOR of their rules' words. */
function ruleHashes(n: number): Int32Array {
  const z = new Int32Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    z[i] = x;
  }
  return z;
}

// Over 60 lines: the reference sweep, kept step for step parallel to native/compile/sweep.cc.
function buildDim(col: FieldIntervals, rules: FamilyRules, u32s: number): DimTable {
  const field = col.field;
  const info = fieldInfo(field, rules.family);
  const n = rules.n;
  // Unconstrained rules cover every key.
  const always = rules.always(col);
  const ev = !info.wide && n < 1 << 19 ? narrowEvents(col, info.max as number) : wideEvents(col, info.max);
  const zob = ruleHashes(n);
  const cur = new Uint32Array(u32s);
  let hash = 0;
  let ones = always.length;  // rules in the current vector
  for (const i of always) {
    cur[i >>> 5] |= 1 << (i & 31);
    hash ^= zob[i];
  }
  let onesTotal = 0;
  const count = new Int32Array(n);
  // One growing pool for all vectors: a typed array per vector would make
  // thousands of ArrayBuffers for the garbage collector at 100k rules.
  let pool = new Uint32Array(Math.max(u32s, 1) * 16);
  let vectorCount = 0;
  const byHash = new Map<number, number[]>();
  const classes: number[] = [];
  const points: Key[] = [];
  // Rules whose bit flipped while applying one key's events (a +1 and a -1
  // at the same key flip it twice: no change).
  const flipped = new Int32Array(n);
  let stamp = 0;
  const touched: number[] = [];
  const snapshot = (): void => {
    const bucket = byHash.get(hash);
    if (bucket) {
      for (const idx of bucket) {
        if (equalAt(pool, idx * u32s, cur)) { classes.push(idx); onesTotal += ones; return; }
      }
    }
    if ((vectorCount + 1) * u32s > pool.length) {
      const bigger = new Uint32Array(pool.length * 2);
      bigger.set(pool);
      pool = bigger;
    }
    pool.set(cur, vectorCount * u32s);
    vectorCount++;
    onesTotal += ones;
    if (bucket) bucket.push(vectorCount - 1); else byHash.set(hash, [vectorCount - 1]);
    classes.push(vectorCount - 1);
  };
  const { keys, rules: er, deltas } = ev;
  let k = 0;
  let first = true;
  while (k < keys.length || first) {
    const key = k < keys.length ? keys[k] : 0;
    const atZero = first && k < keys.length && cmp(key, info.wide ? 0n : 0) === 0;
    stamp++;
    touched.length = 0;
    if (!first || atZero) {
      for (; k < keys.length && cmp(keys[k], key) === 0; k++) {
        const r = er[k];
        const before = count[r] > 0;
        count[r] += deltas[k];
        if (before !== count[r] > 0) {
          cur[r >>> 5] ^= 1 << (r & 31);
          ones += before ? -1 : 1;
          hash ^= zob[r];
          if (flipped[r] !== stamp) { flipped[r] = stamp; touched.push(r); } else flipped[r] = 0;
        }
      }
    }
    if (first) {
      // The elementary interval starting at 0.
      first = false;
      snapshot();
      continue;
    }
    // Merge with the previous interval when nothing changed.
    if (!touched.some((r) => flipped[r] === stamp)) continue;
    points.push(key);
    snapshot();
  }
  return { field, wide: info.wide, boundaries: points, classes: Uint32Array.from(classes), vectors: pool.subarray(0, vectorCount * u32s), vectorCount, density: onesTotal / classes.length };
}
