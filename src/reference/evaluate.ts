/**
 * Reference evaluator: the policy model applied rule by rule, first match
 * wins, straight from each condition's definition. No intervals, no
 * bit-vectors: it shares nothing with the compiler but the model, which is
 * what makes it the oracle of the property tests.
 */
import { DecodedPacket } from '../decode/packet';
import { AddressItem, Cond, Conditions, IKE_FLAG_INITIATOR, IKE_FLAG_RESPONSE, Limit, Policy, Prefix, Range, Rule, SetCond } from '../policy/model';
import { limitBucket } from '../policy/values';
import { CT_STATE_KEYS, TRUNCATED_BOTH, TRUNCATED_KEYS, TRUNCATED_MATCH } from '../compile/fields';

/** `now`: the monotonic clock in nanoseconds that rate limits measure time by (default: process.hrtime). */
export interface Meta { in?: string; out?: string; ctstate?: number; mark?: number; now?: bigint }

/** IKE wire values of the initial-request conditions (RFC 7296, RFC 2408). */
const IKE_SA_INIT = 34, IKEV1_MAIN_MODE = 2, IKEV1_AGGRESSIVE = 4, IKE_NOTIFY_COOKIE = 16390;

/** An initial request: IKEv2 IKE_SA_INIT request from the initiator, or IKEv1's first phase 1 message; responder SPI zero. */
export function ikeInitial(ike: NonNullable<DecodedPacket['ike']>): boolean {
  if (ike.rspi !== '0000000000000000') return false;
  if (ike.version === 2) return ike.exchange === IKE_SA_INIT && (ike.flags & IKE_FLAG_INITIATOR) !== 0 && (ike.flags & IKE_FLAG_RESPONSE) === 0;
  return ike.version === 1 && (ike.exchange === IKEV1_MAIN_MODE || ike.exchange === IKEV1_AGGRESSIVE);
}

/** A retried IKE_SA_INIT: an IKEv2 initial request whose first payload is COOKIE. */
export function ikeCookie(ike: NonNullable<DecodedPacket['ike']>): boolean {
  return ike.version === 2 && ikeInitial(ike) && ike.firstNotify === IKE_NOTIFY_COOKIE;
}

/**
 * Rate-limit state, the reference twin of native/core/limit.cc: per rule, a
 * token bucket or one per source key, most recently used last in a Map
 * (insertion order), the first one evicted when `maxSources` are kept. Credit
 * = min(cap, credit + elapsed x refill) in BigInt, the bucket full when new.
 */
export class LimitState {
  private readonly buckets = new Map<number, Map<string, { credit: bigint; last: bigint }>>();
  /** Per rule: packets that met every other condition but found the bucket empty; per-source buckets evicted. */
  readonly overLimit = new Map<number, number>();
  readonly evictions = new Map<number, number>();

  take(rule: number, limit: Limit, p: DecodedPacket, now: bigint): boolean {
    let table = this.buckets.get(rule);
    if (!table) this.buckets.set(rule, (table = new Map()));
    const key = limit.per === 'src' ? sourceKey(p, limit) : '';
    const { cost, refill, cap } = limitBucket(limit);
    let b = table.get(key);
    if (b) table.delete(key);
    else {
      if (table.size >= (limit.per === 'src' ? limit.maxSources : 1)) {
        table.delete(table.keys().next().value as string);
        this.evictions.set(rule, (this.evictions.get(rule) ?? 0) + 1);
      }
      b = { credit: cap, last: now };
    }
    table.set(key, b);
    if (now > b.last) {
      const credit = b.credit + (now - b.last) * refill;
      b.credit = credit < cap ? credit : cap;
      b.last = now;
    }
    if (b.credit >= cost) {
      b.credit -= cost;
      return true;
    }
    this.overLimit.set(rule, (this.overLimit.get(rule) ?? 0) + 1);
    return false;
  }

  /** Buckets kept for a rule. */
  size(rule: number): number { return this.buckets.get(rule)?.size ?? 0; }
}

/** The bucket key of a source: its family and its first prefix4 / prefix6 bits. */
function sourceKey(p: DecodedPacket, limit: Limit): string {
  const bytes = p.srcBytes!;
  let bits = p.family === 4 ? limit.prefix4 : limit.prefix6;
  const out: number[] = [];
  for (const b of bytes) {
    out.push(bits >= 8 ? b : bits <= 0 ? 0 : b & ((0xff << (8 - bits)) & 0xff));
    bits -= 8;
  }
  return `${p.family}:${Buffer.from(out).toString('hex')}`;
}

export type VerdictName = 'accept' | 'drop' | 'reject' | 'queue' | 'repeat';

export interface Decision {
  /** Index of the deciding rule; -1 when the default decided; -2 for a non-IP frame. */
  rule: number;
  verdict: VerdictName | null;
  /** The packet's mark when a rule set it, else null. */
  mark: number | null;
  queue: number | null;
  /** Every rule that matched on the way (non-terminal ones included). */
  matched: number[];
}

/** Live contents of named sets (the reference twin of the native sets). */
export interface SetContents {
  addresses: Map<string, Prefix[]>;
  spis: Map<string, Range[]>;
}

export function initialSets(policy: Policy): SetContents {
  const addresses = new Map<string, Prefix[]>();
  const spis = new Map<string, Range[]>();
  for (const s of policy.sets.values()) {
    addresses.set(s.name, [...s.addresses]);
    spis.set(s.name, [...s.spis]);
  }
  return { addresses, spis };
}

function inPrefix(addr: Uint8Array, p: Prefix): boolean {
  if (addr.length !== p.bytes.length) return false;
  let bits = p.length;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((addr[i] & mask) !== (p.bytes[i] & mask)) return false;
  }
  return true;
}

function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function inItem(addr: Uint8Array, item: AddressItem): boolean {
  if (item.kind === 'prefix') return inPrefix(addr, item.prefix);
  const r = item.range;
  return addr.length === r.lo.length && cmpBytes(addr, r.lo) >= 0 && cmpBytes(addr, r.hi) <= 0;
}

const inRanges = (v: number, rs: Range[]): boolean => rs.some((r) => v >= r.lo && v <= r.hi);

function anyOf<T>(c: Cond<T>, test: (v: T) => boolean): boolean {
  const hit = c.values.some(test);
  return c.negate ? !hit : hit;
}

function ifaceMatches(pattern: string, name: string): boolean {
  return pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

/** The kernel-truncation kind of a packet (see compile/fields.ts). */
export function truncatedKey(p: DecodedPacket): number {
  if (p.family === 6) {
    // -p drops when ipv6_find_hdr() fails; -m ah when its own walk or the AH is cut short.
    const hdr = p.nfStatus !== 0, ah = p.nfAh === 'drop';
    return hdr && ah ? TRUNCATED_BOTH : hdr ? TRUNCATED_KEYS['ipv6-hdr'] : ah ? TRUNCATED_KEYS.ah : 0;
  }
  if (p.family === 4 && p.fragment === 'later' && p.fragOffset === 1 && p.ipProto === 6) return TRUNCATED_KEYS['tcp-frag1'];
  return 0;
}

/** Bytes at the transport header as netfilter locates it, or null (later fragment, unreadable IPv6 chain). */
export function l4Avail(p: DecodedPacket): number | null {
  if (p.family === null || p.fragment === 'later') return null;
  if (p.family === 6 && (p.nfStatus !== 0 || p.nfLater)) return null;
  return p.nfAvail;
}

/**
 * The first condition of a rule that fails for this packet (its policy key),
 * or null when all hold. `mark` is the packet's current mark.
 */
// Over 60 lines: one short check per condition field, in the order the evaluator applies them.
export function failingCondition(c: Conditions, p: DecodedPacket, meta: Meta, sets: SetContents, mark: number): string | null {
  if (p.family === null) return 'family';
  if (c.family !== undefined && c.family !== p.family) return 'family';
  for (const key of ['src', 'dst'] as const) {
    const cond = c[key];
    if (!cond) continue;
    const addr = key === 'src' ? p.srcBytes! : p.dstBytes!;
    if ('sets' in cond) {
      const hit = cond.sets.some((s) => (sets.addresses.get(s) ?? []).some((pr) => inPrefix(addr, pr)));
      if (hit === cond.negate) return key;
    } else if (!anyOf(cond, (item) => inItem(addr, item))) return key;
  }
  if (c.proto && !anyOf(c.proto, (v) => v === p.proto)) return 'proto';
  if (c.ipProto && !anyOf(c.ipProto, (v) => v === p.ipProto)) return 'ip-proto';
  if (c.nfProto && (p.nfProto === null || !anyOf(c.nfProto, (v) => v === p.nfProto))) return 'nf-proto';
  if (c.nftProto && (p.nftProto === null || !anyOf(c.nftProto, (v) => v === p.nftProto))) return 'nft-proto';
  for (const [key, name] of [['sport', 'sport'], ['dport', 'dport'], ['nftSport', 'nft-sport'], ['nftDport', 'nft-dport']] as const) {
    const cond = c[key];
    if (!cond) continue;
    const v = p[key];
    if (v === null || !anyOf(cond, (r) => v >= r.lo && v <= r.hi)) return name;
  }
  for (const [key, name, value] of [['spi', 'spi', p.spi], ['ahSpi', 'ah-spi', p.ah?.spi ?? null]] as const) {
    const cond = c[key] as Cond<Range> | SetCond | undefined;
    if (!cond) continue;
    if (value === null) return name;
    if ('sets' in cond) {
      const hit = cond.sets.some((s) => inRanges(value, sets.spis.get(s) ?? []));
      if (hit === cond.negate) return name;
    } else if (!anyOf(cond, (r) => value >= r.lo && value <= r.hi)) return name;
  }
  if (c.icmp) {
    const v6 = p.family === 6;
    const icmp = p.icmp && p.proto === (v6 ? 58 : 1) ? p.icmp : null;
    if (!icmp) return v6 ? 'icmpv6' : 'icmp';
    const hit = c.icmp.values.some((x) => x.v6 === v6 && x.type === icmp.type && icmp.code >= x.code.lo && icmp.code <= x.code.hi);
    if (hit === c.icmp.negate) return v6 ? 'icmpv6' : 'icmp';
  }
  if (c.ikeVersion || c.ikeExchange || c.ikeFlags || c.ikeInitial !== undefined || c.ikeCookie !== undefined) {
    const ike = p.ike;
    if (!ike) return 'ike';
    if (c.ikeVersion && !anyOf(c.ikeVersion, (v) => v === ike.version)) return 'ike.version';
    if (c.ikeExchange && !anyOf(c.ikeExchange, (v) => v === ike.exchange)) return 'ike.exchange';
    if (c.ikeFlags && ((ike.flags & c.ikeFlags.set) !== c.ikeFlags.set || (ike.flags & c.ikeFlags.clear) !== 0)) return 'ike.flags';
    if (c.ikeInitial !== undefined && ikeInitial(ike) !== c.ikeInitial) return 'ike.initial';
    if (c.ikeCookie !== undefined && ikeCookie(ike) !== c.ikeCookie) return 'ike.cookie';
  }
  if (c.natt) {
    const k = p.natt === null ? 0 : { ike: 1, esp: 2, keepalive: 3 }[p.natt];
    if (!anyOf(c.natt, (v) => v === k)) return 'natt';
  }
  if (c.fragment) {
    const k = { none: 0, first: 1, later: 2 }[p.fragment!];
    if (!anyOf(c.fragment, (v) => v === k)) return 'fragment';
  }
  if (c.ctstate) {
    const k = meta.ctstate ?? 0;
    if (!anyOf(c.ctstate, (s) => CT_STATE_KEYS[s] === k)) return 'ctstate';
  }
  if (c.length && !anyOf(c.length, (r) => p.totalLength! >= r.lo && p.totalLength! <= r.hi)) return 'length';
  if (c.l4Avail) {
    const a = l4Avail(p);
    if (a === null || !anyOf(c.l4Avail, (r) => a >= r.lo && a <= r.hi)) return 'l4-avail';
  }
  if (c.malformed !== undefined && c.malformed !== (p.malformed !== null)) return 'malformed';
  if (c.truncated !== undefined && !TRUNCATED_MATCH[c.truncated].includes(truncatedKey(p))) return 'truncated';
  if (c.mark && ((mark & c.mark.mask) >>> 0 === c.mark.value) === c.mark.negate) return 'mark';
  for (const key of ['in', 'out'] as const) {
    const cond = c[key];
    if (!cond) continue;
    const name = meta[key];
    const hit = name !== undefined && cond.values.some((pat) => ifaceMatches(pat, name));
    if (hit === cond.negate) return key;
  }
  return null;
}

export function conditionsHold(c: Conditions, p: DecodedPacket, meta: Meta, sets: SetContents, mark: number): boolean {
  return failingCondition(c, p, meta, sets, mark) === null;
}

/** The first failing condition of a rule, its extra conjuncts included. */
export function ruleFailure(rule: Rule, p: DecodedPacket, meta: Meta, sets: SetContents, mark: number): string | null {
  for (const c of [rule.conditions, ...(rule.extra ?? [])]) {
    const f = failingCondition(c, p, meta, sets, mark);
    if (f !== null) return f;
  }
  return null;
}

export function ruleHolds(rule: Rule, p: DecodedPacket, meta: Meta, sets: SetContents, mark: number): boolean {
  return ruleFailure(rule, p, meta, sets, mark) === null;
}

/**
 * Evaluate a policy on a decoded packet, first match wins. A rule's limit is
 * checked last, once every condition holds; over it, the rule does not match.
 * Without `limits` every bucket is fresh (full) for this one packet.
 */
export function referenceEvaluate(policy: Policy, p: DecodedPacket, meta: Meta = {}, sets: SetContents = initialSets(policy),
  limits: LimitState = new LimitState()): Decision {
  if (p.family === null) return { rule: -2, verdict: null, mark: null, queue: null, matched: [] };
  let mark = meta.mark ?? 0;
  let markSet = false;
  const matched: number[] = [];
  const now = meta.now ?? process.hrtime.bigint();
  for (let i = 0; i < policy.rules.length; ) {
    const rule = policy.rules[i];
    if (!ruleHolds(rule, p, meta, sets, mark)) { i++; continue; }
    if (rule.limit && !limits.take(i, rule.limit, p, now)) { i++; continue; }
    matched.push(i);
    const a = rule.action;
    if (a.type === 'mark') {
      mark = ((mark & ~a.mask) ^ a.value) >>> 0;
      markSet = true;
      if (a.then === 'continue') { i++; continue; }
      return { rule: i, verdict: a.then, mark, queue: null, matched };
    }
    if (a.type === 'count') { i++; continue; }
    if (a.type === 'skip') { i = a.to; continue; }
    const queue = a.type === 'queue' ? a.queue : null;
    return { rule: i, verdict: a.type, mark: markSet ? mark : null, queue, matched };
  }
  return { rule: -1, verdict: policy.default, mark: markSet ? mark : null, queue: null, matched };
}
