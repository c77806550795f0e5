/**
 * From a rule's conditions to what the table needs, per address family:
 * for each field, the set of keys that satisfy the condition (a sorted list of
 * disjoint closed intervals), plus the residual checks that are not intervals
 * (mark under a mask, interface names, named-set membership). A rule that can
 * never match in a family is `null` there.
 */
import { AddressItem, Cond, Conditions, Limit, Range, Rule, SetCond } from '../policy/model';
import { CT_STATE_KEYS, Field, fieldInfo, IKE_COOKIE_KEYS, IKE_INITIAL_KEYS, TRUNCATED_MATCH } from './fields';

export type Key = number | bigint;
export interface Interval { lo: Key; hi: Key }

export type Residual =
  | { kind: 'mark'; value: number; mask: number; negate: boolean }
  | { kind: 'in' | 'out'; patterns: string[]; negate: boolean }
  | { kind: 'set'; field: 'src' | 'dst' | 'spi' | 'ah-spi'; sets: string[]; negate: boolean }
  /** Always the rule's last residual: a token is taken only when everything else holds. */
  | { kind: 'limit'; limit: Limit };

export interface FamilyRule {
  dims: Map<Field, Interval[]>;
  residuals: Residual[];
}

const lt = (a: Key, b: Key): boolean => a < b;
const succ = (k: Key): Key => (typeof k === 'bigint' ? k + 1n : k + 1);
const pred = (k: Key): Key => (typeof k === 'bigint' ? k - 1n : k - 1);

/** Sort and merge into disjoint, non-adjacent intervals. */
export function canonical(list: Interval[]): Interval[] {
  return canonicalOwned(list.map((iv) => ({ lo: iv.lo, hi: iv.hi })));
}

const byLo = (a: Interval, b: Interval): number => (lt(a.lo, b.lo) ? -1 : lt(b.lo, a.lo) ? 1 : 0);

/** canonical() on a list of fresh intervals that it may sort and merge in place. */
function canonicalOwned(list: Interval[]): Interval[] {
  if (list.length <= 1) return list;
  for (let i = 1; i < list.length; i++) {
    if (lt(list[i].lo, list[i - 1].lo)) { list.sort(byLo); break; }
  }
  let w = 0;
  for (let r = 1; r < list.length; r++) {
    const last = list[w], iv = list[r];
    if (!lt(succ(last.hi), iv.lo)) {
      if (lt(last.hi, iv.hi)) last.hi = iv.hi;
    } else list[++w] = iv;
  }
  list.length = w + 1;
  return list;
}

/** Complement of canonical intervals within [0, top]. */
export function complement(list: Interval[], top: Key): Interval[] {
  const zero: Key = typeof top === 'bigint' ? 0n : 0;
  const out: Interval[] = [];
  let next: Key = zero;
  for (const iv of list) {
    if (lt(top, iv.lo)) break;
    if (lt(next, iv.lo)) out.push({ lo: next, hi: pred(iv.lo) });
    next = succ(iv.hi);
  }
  if (!lt(top, next)) out.push({ lo: next, hi: top });
  return out;
}

export function intersect(a: Interval[], b: Interval[]): Interval[] {
  const out: Interval[] = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    const lo = lt(a[i].lo, b[j].lo) ? b[j].lo : a[i].lo;
    const hi = lt(a[i].hi, b[j].hi) ? a[i].hi : b[j].hi;
    if (!lt(hi, lo)) out.push({ lo, hi });
    if (lt(a[i].hi, b[j].hi)) i++; else j++;
  }
  return out;
}

function bytesToKey(bytes: Uint8Array): Key {
  if (bytes.length === 4) return ((bytes[0] << 24) >>> 0) + (bytes[1] << 16) + (bytes[2] << 8) + bytes[3];
  let k = 0n;
  for (const b of bytes) k = (k << 8n) | BigInt(b);
  return k;
}

/** The interval of an address item, when it is of this family. */
function addressInterval(item: AddressItem, family: 4 | 6): Interval | null {
  if (item.kind === 'range') return item.range.family === family ? { lo: bytesToKey(item.range.lo), hi: bytesToKey(item.range.hi) } : null;
  const { bytes, length } = item.prefix;
  if (item.prefix.family !== family) return null;
  const lo = bytesToKey(bytes);
  if (family === 4) return { lo, hi: (lo as number) + 2 ** (32 - length) - 1 };
  return { lo, hi: (lo as bigint) + (1n << BigInt(128 - length)) - 1n };
}

/** A negated condition's intervals are the complement within [0, present]. */
const signed = (pos: Interval[], negate: boolean, present: Key): Interval[] => (negate ? complement(pos, present) : pos);

/** Intervals of a condition on single values. */
function valueIntervals(cond: Cond<number>, present: Key): Interval[] {
  const vs = cond.values;
  const list: Interval[] = new Array(vs.length);
  for (let i = 0; i < vs.length; i++) list[i] = { lo: vs[i], hi: vs[i] };
  return signed(canonicalOwned(list), cond.negate, present);
}

/** Intervals of a condition on ranges. */
function rangeIntervals(cond: Cond<Range>, present: Key): Interval[] {
  const vs = cond.values;
  const list: Interval[] = new Array(vs.length);
  for (let i = 0; i < vs.length; i++) list[i] = { lo: vs[i].lo, hi: vs[i].hi };
  return signed(canonicalOwned(list), cond.negate, present);
}

/** Normalise a rule for one family; null when it can never match there. */
export function normalize(rule: Rule, family: 4 | 6): FamilyRule | null {
  if (rule.conditions.family !== undefined && rule.conditions.family !== family) return null;
  const dims = new Map<Field, Interval[]>();
  const residuals: Residual[] = [];
  if (!addConditions(rule.conditions, family, dims, residuals)) return null;
  if (rule.extra) {
    for (const c of rule.extra) if (!addConditions(c, family, dims, residuals)) return null;
  }
  if (rule.limit) residuals.push({ kind: 'limit', limit: rule.limit });
  return { dims, residuals };
}

/** Intersect intervals into a field's; false when none are left (the rule cannot match). */
function put(dims: Map<Field, Interval[]>, field: Field, ivs: Interval[]): boolean {
  const prev = dims.get(field);
  const next = prev ? intersect(prev, ivs) : ivs;
  dims.set(field, next);
  return next.length > 0;
}

const present = (field: Field, family: 4 | 6): Key => fieldInfo(field, family).present;

/** Address conditions: intervals of this family's addresses, or a named-set residual. */
function addAddress(key: 'src' | 'dst', cond: Conditions['src'], family: 4 | 6, dims: Map<Field, Interval[]>, residuals: Residual[]): boolean {
  if (!cond) return true;
  if ('sets' in cond) {
    residuals.push({ kind: 'set', field: key, sets: cond.sets, negate: cond.negate });
    return true;
  }
  const field = key === 'src' ? Field.Src : Field.Dst;
  const mine: Interval[] = [];
  for (const v of cond.values) {
    const iv = addressInterval(v, family);
    if (iv) mine.push(iv);
  }
  return put(dims, field, signed(canonicalOwned(mine), cond.negate, present(field, family)));
}

/** SPI conditions: ranges, or a named-set residual. */
function addSpi(field: Field.Spi | Field.AhSpi, cond: Cond<Range> | SetCond | undefined, family: 4 | 6, dims: Map<Field, Interval[]>, residuals: Residual[]): boolean {
  if (!cond) return true;
  if ('sets' in cond) {
    residuals.push({ kind: 'set', field: field === Field.Spi ? 'spi' : 'ah-spi', sets: cond.sets, negate: cond.negate });
    return true;
  }
  return put(dims, field, rangeIntervals(cond, present(field, family)));
}

/** Intersect one condition set into `dims`; false when it cannot hold in this family. */
// Over 60 lines: one short case per condition field, in the order of the model.
function addConditions(c: Conditions, family: 4 | 6, dims: Map<Field, Interval[]>, residuals: Residual[]): boolean {
  if (c.family !== undefined && c.family !== family) return false;
  const simple = (field: Field, cond: Cond<number> | undefined): boolean => !cond || put(dims, field, valueIntervals(cond, present(field, family)));
  const ranged = (field: Field, cond: Cond<Range> | undefined): boolean => !cond || put(dims, field, rangeIntervals(cond, present(field, family)));
  if (!addAddress('src', c.src, family, dims, residuals) || !addAddress('dst', c.dst, family, dims, residuals)) return false;
  if (!simple(Field.Proto, c.proto) || !simple(Field.IpProto, c.ipProto) || !simple(Field.NfProto, c.nfProto) || !simple(Field.NftProto, c.nftProto)) return false;
  if (!ranged(Field.Sport, c.sport) || !ranged(Field.Dport, c.dport)) return false;
  if (!ranged(Field.NftSport, c.nftSport) || !ranged(Field.NftDport, c.nftDport)) return false;
  if (!addSpi(Field.Spi, c.spi as Cond<Range> | SetCond | undefined, family, dims, residuals)) return false;
  if (!addSpi(Field.AhSpi, c.ahSpi as Cond<Range> | SetCond | undefined, family, dims, residuals)) return false;
  if (c.icmp) {
    const values = c.icmp.values.filter((v) => v.v6 === (family === 6));
    const pos = canonicalOwned(values.map((v) => ({ lo: v.type * 256 + v.code.lo, hi: v.type * 256 + v.code.hi })));
    if (!put(dims, Field.Icmp, c.icmp.negate ? complement(pos, 65535) : pos)) return false;
  }
  let possible = true;
  const need = (ok: boolean): void => { if (!ok) possible = false; };
  need(simple(Field.IkeVersion, c.ikeVersion));
  need(simple(Field.IkeExchange, c.ikeExchange));
  if (c.ikeFlags) {
    const { set, clear } = c.ikeFlags;
    const ok: Interval[] = [];
    for (let f = 0; f < 256; f++) if ((f & set) === set && (f & clear) === 0) ok.push({ lo: f, hi: f });
    need(put(dims, Field.IkeFlags, canonical(ok)));
  }
  if (c.ikeInitial !== undefined) {
    need(put(dims, Field.IkeInitial, c.ikeInitial ? [{ lo: IKE_INITIAL_KEYS.v2, hi: IKE_INITIAL_KEYS.v1 }] : [{ lo: IKE_INITIAL_KEYS.none, hi: IKE_INITIAL_KEYS.none }]));
  }
  if (c.ikeCookie !== undefined) {
    const k = c.ikeCookie ? IKE_COOKIE_KEYS.cookie : IKE_COOKIE_KEYS.none;
    need(put(dims, Field.IkeCookie, [{ lo: k, hi: k }]));
  }
  need(simple(Field.Natt, c.natt));
  need(simple(Field.Fragment, c.fragment));
  if (c.ctstate) {
    const keys: Cond<number> = { negate: c.ctstate.negate, values: c.ctstate.values.map((s) => CT_STATE_KEYS[s]) };
    need(simple(Field.CtState, keys));
  }
  need(ranged(Field.Length, c.length));
  need(ranged(Field.L4Avail, c.l4Avail));
  if (c.malformed !== undefined) need(put(dims, Field.Malformed, c.malformed ? [{ lo: 1, hi: 255 }] : [{ lo: 0, hi: 0 }]));
  if (c.truncated !== undefined) {
    need(put(dims, Field.Truncated, TRUNCATED_MATCH[c.truncated].map((k) => ({ lo: k, hi: k }))));
  }
  if (c.mark) residuals.push({ kind: 'mark', value: c.mark.value, mask: c.mark.mask, negate: c.mark.negate });
  if (c.in) residuals.push({ kind: 'in', patterns: c.in.values, negate: c.in.negate });
  if (c.out) residuals.push({ kind: 'out', patterns: c.out.values, negate: c.out.negate });
  return possible;
}
