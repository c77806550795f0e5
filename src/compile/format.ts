/**
 * The binary decision table, versions 1 and 2 (2: with rate limits): the one seam between the compiler
 * (TypeScript) and the evaluator (native/core/table.cc). Layout, field by
 * field, in docs/table-format.md; the header's offsets, the set kinds
 * and the flag bits come from src/wire.ts (generated with native/core/wire.h
 * from native/wire/constants.json); the record layouts here and in
 * native/core/table.h must agree.
 */
import * as zlib from 'node:zlib';
import { Limit, Rule, NamedSet, Verdict } from '../policy/model';
import { FamilyTable } from './build';
import { Residual } from './normalize';
import { RuleFlag, SetKind, TABLE_HEADER_SIZE, TableFlag, TableHeader } from '../wire';
import { native } from '../native';

export const MAGIC = 0x5153464e; // "NFSQ"
/** Version 2 adds the limits section; a table without limits is still written as version 1, byte for byte as before. */
export const VERSION = 1;
export const VERSION_LIMITS = 2;
export const LIMIT_SIZE = 24;
export const HEADER_SIZE = TABLE_HEADER_SIZE;
export const RULE_SIZE = 24;
export const RESIDUAL_SIZE = 16;
export const DIM_SIZE = 32;
export const SET_SIZE = 16;
export const ADDRESS_ELEMENT_SIZE = 20;

export const enum ActionCode { Accept = 0, Drop = 1, Reject = 2, Queue = 3, Continue = 4, Skip = 5, Repeat = 6 }
export const enum ResidualCode { Mark = 1, In = 2, Out = 3, SetSrc = 4, SetDst = 5, SetSpi = 6, SetAhSpi = 7, Limit = 8 }
export const enum LimitPer { Rule = 0, Source = 1 }
export const VERDICT_CODES: Record<Verdict, number> = { accept: 0, drop: 1, reject: 2 };
export const FLAG_NEEDS_CTSTATE = TableFlag.NeedsCtState, FLAG_NEEDS_INTERFACES = TableFlag.NeedsInterfaces, FLAG_NEEDS_MARK = TableFlag.NeedsMark;

/** CRC-32 (IEEE 802.3, reflected, as zlib), eight bytes per step ("slicing-by-8"). */
const CRC_TABLES = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    for (let k = 1; k < 8; k++) t[k * 256 + i] = (t[(k - 1) * 256 + i] >>> 8) ^ t[t[(k - 1) * 256 + i] & 0xff];
  }
  return t;
})();

// Node >= 20.15 has zlib's own (several times faster on large tables).
const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** The addon's checksum (the loader's own; carry-less multiplication, about three times zlib's speed), when it loads. */
let nativeCrc32: ((bytes: Uint8Array) => number) | null | undefined;
function addonCrc32(): ((bytes: Uint8Array) => number) | null {
  if (nativeCrc32 === undefined) {
    try {
      const addon = native();
      nativeCrc32 = (b) => addon.crc32(b);
    } catch {
      nativeCrc32 = null;
    }
  }
  return nativeCrc32;
}

export function crc32(bytes: Uint8Array, from = 0, to = bytes.length): number {
  const fast = addonCrc32();
  if (fast) return fast(bytes.subarray(from, to)) >>> 0;
  if (zlibCrc32) return zlibCrc32(bytes.subarray(from, to)) >>> 0;
  return crc32Slicing(bytes, from, to);
}

/** The portable path (exported for its test). */
export function crc32Slicing(bytes: Uint8Array, from = 0, to = bytes.length): number {
  const t = CRC_TABLES;
  let c = 0xffffffff;
  let i = from;
  for (; i + 8 <= to; i += 8) {
    const lo = (c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))) >>> 0;
    const hi = bytes[i + 4] | (bytes[i + 5] << 8) | (bytes[i + 6] << 16) | (bytes[i + 7] << 24);
    c = t[1792 + (lo & 0xff)] ^ t[1536 + ((lo >>> 8) & 0xff)] ^ t[1280 + ((lo >>> 16) & 0xff)] ^ t[1024 + (lo >>> 24)] ^
      t[768 + (hi & 0xff)] ^ t[512 + ((hi >>> 8) & 0xff)] ^ t[256 + ((hi >>> 16) & 0xff)] ^ t[hi >>> 24 & 0xff];
  }
  for (; i < to; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

class Writer {
  buf: Uint8Array;
  view: DataView;
  constructor(capacity: number) {
    this.buf = new Uint8Array(Math.max(1 << 16, capacity));
    this.view = new DataView(this.buf.buffer);
  }
  size = 0;
  reserve(n: number): number {
    const at = this.size;
    if (at + n > this.buf.length) {
      let cap = this.buf.length;
      while (cap < at + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.size));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.size += n;
    return at;
  }
  align(n = 8): void { this.reserve((n - (this.size % n)) % n); }
  u8(at: number, v: number): void { this.view.setUint8(at, v); }
  u16(at: number, v: number): void { this.view.setUint16(at, v, true); }
  u32(at: number, v: number): void { this.view.setUint32(at, v >>> 0, true); }
  u64(at: number, v: number | bigint): void { this.view.setBigUint64(at, BigInt(v), true); }
}

export interface TableInput {
  rules: Rule[];
  residuals: Residual[][];
  defaultVerdict: Verdict;
  families: { 4: FamilyTable; 6: FamilyTable };
  sets: NamedSet[];
  flags: number;
}

/** Serialise a compiled policy. */
/** Bytes the families' sections take (the bulk of a large table), so the writer allocates once. */
function familyBytes(f: FamilyTable): number {
  const swords = Math.ceil(f.words / 64);
  let n = 64 + f.words * 8 + swords * 8;
  for (const d of f.dims) n += 64 + d.boundaries.length * (d.wide ? 16 : 8) + d.classes.length * 4 + d.vectorCount * (f.words + swords) * 8;
  return n;
}

export function writeTable(t: TableInput): Uint8Array {
  const w = new Writer(familyBytes(t.families[4]) + familyBytes(t.families[6]) + t.rules.length * 64 + (1 << 16));
  w.reserve(HEADER_SIZE);
  const f = flatten(t);
  const rulesOff = writeRules(w, t.rules, f.perRule);
  const residualsOff = writeResiduals(w, f.residuals);
  w.align();
  const refsOff = w.reserve(f.refs.length * 4);
  f.refs.forEach((v, i) => w.u32(refsOff + i * 4, v));
  const limitsOff = writeLimits(w, f.limits);
  const setsOff = writeSets(w, t.sets, f.strings);
  const strings = writeStrings(w, f.strings.list);
  const famOff = [writeFamily(w, t.families[4]), writeFamily(w, t.families[6])];
  w.align();
  const total = w.size;
  const H = TableHeader;
  w.u32(H.magic, MAGIC);
  w.u16(H.version, f.limits.length ? VERSION_LIMITS : VERSION);
  w.u16(H.headerSize, HEADER_SIZE);
  w.u32(H.totalSize, total);
  w.u32(H.ruleCount, t.rules.length);
  w.u8(H.defaultVerdict, VERDICT_CODES[t.defaultVerdict]);
  w.u8(H.flags, t.flags);
  w.u32(H.rulesOff, rulesOff);
  w.u32(H.residualsOff, residualsOff);
  w.u32(H.residualCount, f.residuals.length);
  w.u32(H.fam4Off, famOff[0]);
  w.u32(H.fam6Off, famOff[1]);
  w.u32(H.stringsOff, strings.off);
  w.u32(H.stringsSize, strings.size);
  w.u32(H.setsOff, setsOff);
  w.u32(H.setCount, t.sets.length);
  w.u32(H.refsOff, refsOff);
  w.u32(H.refCount, f.refs.length);
  if (f.limits.length) {
    w.u32(H.limitsOff, limitsOff);
    w.u32(H.limitCount, f.limits.length);
  }
  // Sized right from the start: a view, not another copy, unless much was left over.
  const out = w.buf.length - total <= (1 << 20) + total / 8 ? w.buf.subarray(0, total) : w.buf.slice(0, total);
  new DataView(out.buffer).setUint32(H.checksum, crc32(out, H.ruleCount, total), true); // the checksum covers what follows it
  return out;
}

/** The string table: interface patterns and set names, each stored once. */
class Strings {
  readonly list: string[] = [];
  private readonly index = new Map<string, number>();
  of(s: string): number {
    let i = this.index.get(s);
    if (i === undefined) { i = this.list.length; this.list.push(s); this.index.set(s, i); }
    return i;
  }
}

interface FlatResidual { code: number; negate: boolean; a: number; b: number }

/** Every rule's residuals in one list, with their reference lists, limits and strings. */
function flatten(t: TableInput): { strings: Strings; refs: number[]; residuals: FlatResidual[]; perRule: { start: number; count: number }[]; limits: Limit[] } {
  const strings = new Strings();
  const setIndex = new Map(t.sets.map((s, i) => [s.name, i]));
  for (const s of t.sets) strings.of(s.name);
  const refs: number[] = [];
  const residuals: FlatResidual[] = [];
  const perRule: { start: number; count: number }[] = [];
  const limits: Limit[] = [];
  const SET_CODES = { src: ResidualCode.SetSrc, dst: ResidualCode.SetDst, spi: ResidualCode.SetSpi, 'ah-spi': ResidualCode.SetAhSpi } as const;
  for (const list of t.residuals) {
    const start = residuals.length;
    for (const r of list) {
      if (r.kind === 'mark') residuals.push({ code: ResidualCode.Mark, negate: r.negate, a: r.value, b: r.mask });
      else if (r.kind === 'limit') {
        residuals.push({ code: ResidualCode.Limit, negate: false, a: limits.length, b: 0 });
        limits.push(r.limit);
      } else {
        const items = r.kind === 'set' ? r.sets.map((name) => setIndex.get(name)!) : r.patterns.map((p) => strings.of(p));
        const code = r.kind === 'set' ? SET_CODES[r.field] : r.kind === 'in' ? ResidualCode.In : ResidualCode.Out;
        residuals.push({ code, negate: r.negate, a: refs.length, b: items.length });
        refs.push(...items);
      }
    }
    perRule.push({ start, count: residuals.length - start });
  }
  return { strings, refs, residuals, perRule, limits };
}

/** A rule's action as the record's action code, flags, queue, mark and skip target. */
function ruleRecord(a: Rule['action']): { code: number; flags: number; queue: number; markValue: number; markMask: number; skipTo: number } {
  const r = { code: ActionCode.Accept as number, flags: 0, queue: 0, markValue: 0, markMask: 0, skipTo: 0 };
  switch (a.type) {
    case 'accept': r.code = ActionCode.Accept; break;
    case 'drop': r.code = ActionCode.Drop; break;
    case 'reject': r.code = ActionCode.Reject; break;
    case 'repeat': r.code = ActionCode.Repeat; break;
    case 'queue': r.code = ActionCode.Queue; r.queue = a.queue; break;
    case 'count': r.code = ActionCode.Continue; break;
    case 'mark':
      r.code = a.then === 'accept' ? ActionCode.Accept : a.then === 'repeat' ? ActionCode.Repeat : ActionCode.Continue;
      r.flags = RuleFlag.SetsMark; r.markValue = a.value; r.markMask = a.mask;
      break;
    case 'skip': r.code = ActionCode.Skip; r.skipTo = a.to; break;
  }
  return r;
}

function writeRules(w: Writer, rules: Rule[], perRule: { start: number; count: number }[]): number {
  w.align();
  const off = w.reserve(rules.length * RULE_SIZE);
  rules.forEach((rule, i) => {
    const at = off + i * RULE_SIZE;
    const r = ruleRecord(rule.action);
    w.u8(at, r.code);
    w.u8(at + 1, r.flags);
    w.u16(at + 2, r.queue);
    w.u32(at + 4, r.markValue);
    w.u32(at + 8, r.markMask);
    w.u32(at + 12, r.skipTo);
    w.u32(at + 16, perRule[i].start);
    w.u16(at + 20, perRule[i].count);
  });
  return off;
}

function writeResiduals(w: Writer, residuals: FlatResidual[]): number {
  w.align();
  const off = w.reserve(residuals.length * RESIDUAL_SIZE);
  residuals.forEach((r, i) => {
    const at = off + i * RESIDUAL_SIZE;
    w.u8(at, r.code);
    w.u8(at + 1, r.negate ? 1 : 0);
    w.u32(at + 4, r.a);
    w.u32(at + 8, r.b);
  });
  return off;
}

function writeLimits(w: Writer, limits: Limit[]): number {
  w.align();
  const off = w.reserve(limits.length * LIMIT_SIZE);
  limits.forEach((l, i) => {
    const at = off + i * LIMIT_SIZE;
    w.u8(at, l.per === 'src' ? LimitPer.Source : LimitPer.Rule);
    w.u8(at + 1, l.per === 'src' ? l.prefix4 : 0);
    w.u8(at + 2, l.per === 'src' ? l.prefix6 : 0);
    w.u32(at + 4, l.rate);
    w.u32(at + 8, l.burst);
    w.u32(at + 12, l.per === 'src' ? l.maxSources : 0);
    w.u64(at + 16, l.periodNs);
  });
  return off;
}

/** Set descriptors, each followed by its elements (20-byte prefixes or 8-byte SPI ranges). */
function writeSets(w: Writer, sets: NamedSet[], strings: Strings): number {
  w.align();
  const off = w.reserve(sets.length * SET_SIZE);
  sets.forEach((s, i) => {
    const at = off + i * SET_SIZE;
    w.align();
    const elemOff = w.size;
    if (s.kind === 'address') {
      w.reserve(s.addresses.length * ADDRESS_ELEMENT_SIZE);
      s.addresses.forEach((p, k) => {
        const e = elemOff + k * ADDRESS_ELEMENT_SIZE;
        w.u8(e, p.family);
        w.u8(e + 1, p.length);
        w.buf.set(p.bytes, e + 4);
      });
    } else {
      w.reserve(s.spis.length * 8);
      s.spis.forEach((r, k) => { w.u32(elemOff + k * 8, r.lo); w.u32(elemOff + k * 8 + 4, r.hi); });
    }
    w.u8(at, s.kind === 'address' ? SetKind.Address : SetKind.Spi);
    w.u32(at + 4, strings.of(s.name));
    w.u32(at + 8, s.kind === 'address' ? s.addresses.length : s.spis.length);
    w.u32(at + 12, elemOff);
  });
  return off;
}

/** Strings: count, (offset, length) pairs relative to the section, bytes. */
function writeStrings(w: Writer, strings: string[]): { off: number; size: number } {
  w.align();
  const off = w.size;
  const dirAt = w.reserve(4 + strings.length * 8);
  w.u32(dirAt, strings.length);
  strings.forEach((s, i) => {
    const b = Buffer.from(s, 'utf8');
    const at = w.reserve(b.length);
    w.buf.set(b, at);
    w.u32(dirAt + 4 + i * 8, at - off);
    w.u32(dirAt + 8 + i * 8, b.length);
  });
  return { off, size: w.size - off };
}

/**
 * Aggregated bit-vector at `off`: bit b set when 64-rule block b of the
 * vector at v[start..] has any bit set; written as little-endian 32-bit halves.
 */
function writeSummary(w: Writer, off: number, v: Uint32Array, start: number, words: number): void {
  for (let s = 0; 64 * s < words; s++) {
    let lo = 0, hi = 0;
    const end = Math.min(64, words - 64 * s);
    for (let b = 0; b < end; b++) {
      const at = start + 2 * (64 * s + b);
      if ((v[at] | v[at + 1]) === 0) continue;
      if (b < 32) lo |= 1 << b; else hi |= 1 << (b - 32);
    }
    w.u32(off + 8 * s, lo);
    w.u32(off + 8 * s + 4, hi);
  }
}

function writeFamily(w: Writer, f: FamilyTable): number {
  const swords = Math.ceil(f.words / 64);
  w.align();
  const at = w.reserve(16 + f.dims.length * DIM_SIZE);
  w.u32(at, f.words);
  w.u32(at + 4, f.dims.length);
  w.align();
  const baseOff = w.reserve(f.words * 8);
  w.buf.set(new Uint8Array(f.base.buffer, f.base.byteOffset, f.words * 8), baseOff);
  w.u32(at + 8, baseOff);
  const baseSumOff = w.reserve(swords * 8);
  writeSummary(w, baseSumOff, f.base, 0, f.words);
  w.u32(at + 12, baseSumOff);
  f.dims.forEach((d, i) => {
    const da = at + 16 + i * DIM_SIZE;
    w.align();
    const keySize = d.wide ? 16 : 8;
    const bOff = w.reserve(d.boundaries.length * keySize);
    d.boundaries.forEach((k, j) => {
      if (d.wide) {
        const big = BigInt(k);
        w.u64(bOff + j * 16, big >> 64n);
        w.u64(bOff + j * 16 + 8, big & ((1n << 64n) - 1n));
      } else {
        w.u32(bOff + j * 8, (k as number) % 0x100000000);
        w.u32(bOff + j * 8 + 4, Math.floor((k as number) / 0x100000000));
      }
    });
    w.align();
    const cOff = w.reserve(d.classes.length * 4);
    w.buf.set(new Uint8Array(d.classes.buffer, d.classes.byteOffset, d.classes.byteLength), cOff);
    w.align();
    const vOff = w.reserve(d.vectorCount * f.words * 8);
    const sOff = w.reserve(d.vectorCount * swords * 8);
    if (d.vectors instanceof Uint32Array) {
      w.buf.set(new Uint8Array(d.vectors.buffer, d.vectors.byteOffset, d.vectorCount * f.words * 8), vOff);
      for (let j = 0; j < d.vectorCount; j++) writeSummary(w, sOff + j * swords * 8, d.vectors, j * f.words * 2, f.words);
    } else {
      d.vectors(w.buf, vOff, sOff);
    }
    w.u8(da, d.field);
    w.u8(da + 1, d.wide ? 1 : 0);
    w.u32(da + 4, d.boundaries.length);
    w.u32(da + 8, bOff);
    w.u32(da + 12, cOff);
    w.u32(da + 16, vOff);
    w.u32(da + 20, d.vectorCount);
    w.u32(da + 24, sOff);
  });
  return at;
}
