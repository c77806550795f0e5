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
  const sorted = [...list].sort((a, b) => (lt(a.lo, b.lo) ? -1 : lt(b.lo, a.lo) ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last && !lt(succ(last.hi), iv.lo)) {
      if (lt(last.hi, iv.hi)) last.hi = iv.hi;
    } else out.push({ ...iv });
  }
  return out;
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

function addressInterval(item: AddressItem): { family: 4 | 6; iv: Interval } {
  if (item.kind === 'range') return { family: item.range.family, iv: { lo: bytesToKey(item.range.lo), hi: bytesToKey(item.range.hi) } };
  const { family, bytes, length } = item.prefix;
  const bits = family === 4 ? 32 : 128;
  const lo = bytesToKey(bytes);
  if (family === 4) {
    const span = 2 ** (bits - length);
    return { family, iv: { lo, hi: (lo as number) + span - 1 } };
  }
  const span = 1n << BigInt(bits - length);
  return { family, iv: { lo, hi: (lo as bigint) + span - 1n } };
}

/** Intervals of a condition in a domain, honouring negation within [0, present]. */
function condIntervals<T>(cond: Cond<T>, toIv: (v: T) => Interval[], present: Key): Interval[] {
  const pos = canonical(cond.values.flatMap(toIv));
  return cond.negate ? complement(pos, present) : pos;
}

const rangeIv = (r: Range): Interval[] => [{ lo: r.lo, hi: r.hi }];
const valueIv = (v: number): Interval[] => [{ lo: v, hi: v }];

/** Normalise a rule for one family; null when it can never match there. */
export function normalize(rule: Rule, family: 4 | 6): FamilyRule | null {
  const dims = new Map<Field, Interval[]>();
  const residuals: Residual[] = [];
  for (const c of [rule.conditions, ...(rule.extra ?? [])]) {
    if (!addConditions(c, family, dims, residuals)) return null;
  }
  if (rule.limit) residuals.push({ kind: 'limit', limit: rule.limit });
  return { dims, residuals };
}

/** Intersect one condition set into `dims`; false when it cannot hold in this family. */
// Over 60 lines: one short case per condition field, in the order of the model.
function addConditions(c: Conditions, family: 4 | 6, dims: Map<Field, Interval[]>, residuals: Residual[]): boolean {
  if (c.family !== undefined && c.family !== family) return false;
  const put = (field: Field, ivs: Interval[]): boolean => {
    const prev = dims.get(field);
    const next = prev ? intersect(prev, ivs) : ivs;
    dims.set(field, next);
    return next.length > 0;
  };
  let possible = true;
  const need = (ok: boolean): void => { if (!ok) possible = false; };

  for (const key of ['src', 'dst'] as const) {
    const cond = c[key];
    if (!cond) continue;
    if ('sets' in cond) {
      residuals.push({ kind: 'set', field: key, sets: cond.sets, negate: cond.negate });
      continue;
    }
    const info = fieldInfo(key === 'src' ? Field.Src : Field.Dst, family);
    const mine = cond.values.map(addressInterval).filter((x) => x.family === family).map((x) => x.iv);
    const pos = canonical(mine);
    need(put(key === 'src' ? Field.Src : Field.Dst, cond.negate ? complement(pos, info.present) : pos));
  }
  const simple = (field: Field, cond: Cond<number> | undefined): void => {
    if (cond) need(put(field, condIntervals(cond, valueIv, fieldInfo(field, family).present)));
  };
  const ranged = (field: Field, cond: Cond<Range> | undefined): void => {
    if (cond) need(put(field, condIntervals(cond, rangeIv, fieldInfo(field, family).present)));
  };
  simple(Field.Proto, c.proto);
  simple(Field.IpProto, c.ipProto);
  simple(Field.NfProto, c.nfProto);
  simple(Field.NftProto, c.nftProto);
  ranged(Field.Sport, c.sport);
  ranged(Field.Dport, c.dport);
  for (const [key, field, name] of [['spi', Field.Spi, 'spi'], ['ahSpi', Field.AhSpi, 'ah-spi']] as const) {
    const cond = c[key] as Cond<Range> | SetCond | undefined;
    if (!cond) continue;
    if ('sets' in cond) residuals.push({ kind: 'set', field: name, sets: cond.sets, negate: cond.negate });
    else ranged(field, cond);
  }
  if (c.icmp) {
    const values = c.icmp.values.filter((v) => v.v6 === (family === 6));
    const pos = canonical(values.map((v) => ({ lo: v.type * 256 + v.code.lo, hi: v.type * 256 + v.code.hi })));
    need(put(Field.Icmp, c.icmp.negate ? complement(pos, 65535) : pos));
  }
  simple(Field.IkeVersion, c.ikeVersion);
  simple(Field.IkeExchange, c.ikeExchange);
  if (c.ikeFlags) {
    const { set, clear } = c.ikeFlags;
    const ok: Interval[] = [];
    for (let f = 0; f < 256; f++) if ((f & set) === set && (f & clear) === 0) ok.push({ lo: f, hi: f });
    need(put(Field.IkeFlags, canonical(ok)));
  }
  if (c.ikeInitial !== undefined) {
    need(put(Field.IkeInitial, c.ikeInitial ? [{ lo: IKE_INITIAL_KEYS.v2, hi: IKE_INITIAL_KEYS.v1 }] : [{ lo: IKE_INITIAL_KEYS.none, hi: IKE_INITIAL_KEYS.none }]));
  }
  if (c.ikeCookie !== undefined) {
    const k = c.ikeCookie ? IKE_COOKIE_KEYS.cookie : IKE_COOKIE_KEYS.none;
    need(put(Field.IkeCookie, [{ lo: k, hi: k }]));
  }
  simple(Field.Natt, c.natt);
  simple(Field.Fragment, c.fragment);
  if (c.ctstate) {
    const keys: Cond<number> = { negate: c.ctstate.negate, values: c.ctstate.values.map((s) => CT_STATE_KEYS[s]) };
    simple(Field.CtState, keys);
  }
  ranged(Field.Length, c.length);
  ranged(Field.L4Avail, c.l4Avail);
  if (c.malformed !== undefined) need(put(Field.Malformed, c.malformed ? [{ lo: 1, hi: 255 }] : [{ lo: 0, hi: 0 }]));
  if (c.truncated !== undefined) {
    need(put(Field.Truncated, TRUNCATED_MATCH[c.truncated].map((k) => ({ lo: k, hi: k }))));
  }
  if (c.mark) residuals.push({ kind: 'mark', value: c.mark.value, mask: c.mark.mask, negate: c.mark.negate });
  if (c.in) residuals.push({ kind: 'in', patterns: c.in.values, negate: c.in.negate });
  if (c.out) residuals.push({ kind: 'out', patterns: c.out.values, negate: c.out.negate });
  return possible;
}
