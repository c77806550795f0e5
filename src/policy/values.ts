/**
 * Parsing of condition values shared by the YAML/JSON reader, the typed
 * builder and the iptables importer: ports and ranges, protocols, addresses,
 * ICMP types, IKE fields. Each parser returns a value or throws ValueError
 * with a message that names what was expected.
 */
import { parseIpv4, parseIpv6 } from '../decode/address';
import { NfsieveError } from '../errors';
import {
  AddressItem, FRAGMENTS, ICMP_TYPES, ICMPV6_TYPES, IKE_EXCHANGE_NAMES, Limit, LIMIT_UNITS, NATT_KINDS, PROTOCOLS, Prefix, Range,
} from './model';

/** A value refused by a parser; code EVALUE. */
export class ValueError extends NfsieveError {
  constructor(message: string) {
    super('EVALUE', message);
    this.name = 'ValueError';
  }
}

const INT = /^(0x[0-9a-fA-F]+|\d+)$/;

export function parseUint(text: string | number, max: number, what: string): number {
  const s = String(text).trim();
  if (!INT.test(s)) throw new ValueError(`${what}: expected a number from 0 to ${max}, got '${text}'`);
  const n = Number(s);
  if (n > max) throw new ValueError(`${what}: ${n} is out of range (0-${max})`);
  return n;
}

/** `N`, `LO-HI` or `LO:HI` (iptables), either end optional with ':' as in iptables (":1023", "1024:"). */
export function parseRange(text: string | number, max: number, what: string): Range {
  const s = String(text).trim();
  const m = /^([^-:]*)\s*[-:]\s*([^-:]*)$/.exec(s);
  if (!m) {
    const n = parseUint(s, max, what);
    return { lo: n, hi: n };
  }
  const lo = m[1] === '' ? 0 : parseUint(m[1], max, what);
  const hi = m[2] === '' ? max : parseUint(m[2], max, what);
  if (lo > hi) throw new ValueError(`${what}: range ${s} is empty (start above end)`);
  return { lo, hi };
}

export function parseProtocol(text: string | number): number {
  const s = String(text).trim().toLowerCase();
  if (INT.test(s)) return parseUint(s, 255, 'protocol');
  const n = PROTOCOLS[s];
  if (n === undefined) throw new ValueError(`unknown protocol '${text}' (use a number 0-255 or one of ${Object.keys(PROTOCOLS).join(', ')})`);
  return n;
}

/** `A.B.C.D`, `A.B.C.D/N`, IPv6 likewise, or `LO-HI` address ranges. */
export function parseAddressItem(text: string): AddressItem {
  const s = text.trim();
  const dash = s.indexOf('-');
  if (dash > 0) {
    const lo = parseHost(s.slice(0, dash));
    const hi = parseHost(s.slice(dash + 1));
    if (lo.family !== hi.family) throw new ValueError(`address range '${s}' mixes IPv4 and IPv6`);
    if (compareBytes(lo.bytes, hi.bytes) > 0) throw new ValueError(`address range '${s}' is empty (start above end)`);
    return { kind: 'range', range: { family: lo.family, lo: lo.bytes, hi: hi.bytes } };
  }
  return { kind: 'prefix', prefix: parsePrefix(s) };
}

export function parsePrefix(text: string): Prefix {
  const s = text.trim();
  const slash = s.indexOf('/');
  const host = parseHost(slash < 0 ? s : s.slice(0, slash));
  const bits = host.family === 4 ? 32 : 128;
  let length = bits;
  if (slash >= 0) {
    const lenText = s.slice(slash + 1);
    if (/^\d+$/.test(lenText)) {
      length = Number(lenText);
      if (length > bits) throw new ValueError(`prefix length /${length} is too long for '${s}' (at most ${bits})`);
    } else {
      // iptables also accepts a dotted netmask: 10.0.0.0/255.0.0.0
      const mask = host.family === 4 ? parseIpv4(lenText) : null;
      if (!mask) throw new ValueError(`bad prefix length in '${s}'`);
      length = maskLength(mask);
      if (length < 0) throw new ValueError(`netmask ${lenText} in '${s}' is not contiguous`);
    }
  }
  // Canonical form: host bits cleared (iptables does the same).
  const bytes = host.bytes.slice();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, length - i * 8));
    bytes[i] &= keep === 8 ? 0xff : (0xff << (8 - keep)) & 0xff;
  }
  return { family: host.family, bytes, length };
}

function maskLength(mask: Uint8Array): number {
  let n = 0;
  let seenZero = false;
  for (const b of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      if (b & (1 << bit)) {
        if (seenZero) return -1;
        n++;
      } else seenZero = true;
    }
  }
  return n;
}

export function parseHost(text: string): { family: 4 | 6; bytes: Uint8Array } {
  const s = text.trim();
  if (s.includes(':')) {
    const b = parseIpv6(s);
    if (!b) throw new ValueError(`bad IPv6 address '${s}'`);
    return { family: 6, bytes: b };
  }
  const b = parseIpv4(s);
  if (!b) throw new ValueError(`bad IPv4 address '${s}'`);
  return { family: 4, bytes: b };
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** ICMP type by name or number, with optional code ("3/4", "destination-unreachable/4"). */
export function parseIcmp(text: string | number, v6: boolean): { v6: boolean; type: number; code: Range } {
  const s = String(text).trim();
  const names = v6 ? ICMPV6_TYPES : ICMP_TYPES;
  const what = v6 ? 'icmpv6' : 'icmp';
  const [t, c] = s.split('/');
  let type: number;
  let code: Range = { lo: 0, hi: 255 };
  if (INT.test(t)) type = parseUint(t, 255, `${what} type`);
  else {
    const named = names[t];
    if (!named) throw new ValueError(`unknown ${what} type '${t}' (use a number or one of ${Object.keys(names).join(', ')})`);
    type = named.type;
    if (named.code !== undefined) code = { lo: named.code, hi: named.code };
  }
  if (c !== undefined) {
    if (code.lo === code.hi) throw new ValueError(`${what} '${s}': '${t}' already names a code`);
    const n = parseIcmpCode(c, type, v6);
    code = { lo: n, hi: n };
  }
  return { v6, type, code };
}

/** A code by number, or by a name that belongs to `type` ("fragmentation-needed" for 3). */
export function parseIcmpCode(text: string | number, type: number, v6: boolean): number {
  const s = String(text).trim();
  if (INT.test(s)) return parseUint(s, 255, 'icmp code');
  const named = (v6 ? ICMPV6_TYPES : ICMP_TYPES)[s];
  if (!named || named.code === undefined || named.type !== type) throw new ValueError(`'${s}' is not a code of ${v6 ? 'icmpv6' : 'icmp'} type ${type}`);
  return named.code;
}

export function parseIkeExchange(text: string | number): number {
  const s = String(text).trim();
  if (INT.test(s)) return parseUint(s, 255, 'ike exchange');
  const n = IKE_EXCHANGE_NAMES[s.toLowerCase()];
  if (n === undefined) throw new ValueError(`unknown IKE exchange '${s}' (use a number or one of ${Object.keys(IKE_EXCHANGE_NAMES).join(', ')})`);
  return n;
}

export function parseEnum(text: string | number, table: Record<string, number>, what: string): number {
  const n = table[String(text).trim().toLowerCase()];
  if (n === undefined) throw new ValueError(`unknown ${what} '${text}' (one of ${Object.keys(table).join(', ')})`);
  return n;
}

export const parseNatt = (t: string | number): number => parseEnum(t, NATT_KINDS, 'natt kind');
export const parseFragment = (t: string | number): number => parseEnum(t, FRAGMENTS, 'fragment');

/**
 * `VALUE` or `VALUE/MASK` (a mark), numbers in decimal or hex. A mark match
 * (`mark & MASK == VALUE`) keeps only VALUE's bits inside MASK; a mark action
 * (`(mark & ~MASK) ^ VALUE`, iptables' --set-xmark) keeps VALUE whole, since
 * its bits outside MASK toggle the mark (`0x1/0x0` is --xor-mark 0x1).
 */
export function parseMark(text: string | number, use: 'match' | 'action' = 'match'): { value: number; mask: number } {
  const [v, m] = String(text).trim().split('/');
  const value = parseUint(v, 0xffffffff, 'mark');
  const mask = m === undefined ? 0xffffffff : parseUint(m, 0xffffffff, 'mark mask');
  return { value: use === 'action' ? value : (value & mask) >>> 0, mask };
}

/** Interface names: up to 15 characters, `+` only as the last one (a prefix wildcard). */
export function parseInterface(text: string): string {
  const s = String(text).trim();
  if (s.length === 0 || s.length > 15) throw new ValueError(`interface name '${s}' must have 1-15 characters`);
  if (/[\s/]/.test(s) || s.slice(0, -1).includes('+')) throw new ValueError(`bad interface name '${s}' ('+' may only end it)`);
  return s;
}

/** A rate as iptables writes it: `N/s`, `N/sec`, `N/second`, `N/m|min|minute`, `N/h|hour`, `N/d|day` (N from 1 to 2^32-1). */
export function parseRate(text: unknown): { rate: number; periodNs: bigint } {
  if (typeof text !== 'string') throw new ValueError(`rate is a string like "20/s" (units s, sec, second, m, min, minute, h, hour, d, day), not ${JSON.stringify(text)}`);
  const m = /^\s*(\d+)\s*\/\s*([a-z]+)\s*$/i.exec(text);
  const period = m ? LIMIT_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || period === undefined) throw new ValueError(`bad rate '${text}': expected N/s, N/min, N/hour or N/day (units s, sec, second, m, min, minute, h, hour, d, day)`);
  const rate = Number(m[1]);
  if (rate < 1 || rate > 0xffffffff) throw new ValueError(`rate '${text}': N must be from 1 to ${0xffffffff}`);
  return { rate, periodNs: period };
}

function gcd(a: bigint, b: bigint): bigint {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * The exact integer bucket of a limit (native/core/limit.h): a token costs
 * periodNs / g credits, a nanosecond adds rate / g, a full bucket holds
 * burst tokens (g = gcd(rate, periodNs)).
 */
export function limitBucket(l: Pick<Limit, 'rate' | 'periodNs' | 'burst'>): { cost: bigint; refill: bigint; cap: bigint } {
  const g = gcd(BigInt(l.rate), l.periodNs);
  const cost = l.periodNs / g;
  return { cost, refill: BigInt(l.rate) / g, cap: cost * BigInt(l.burst) };
}

/** burst x cost must fit 62 bits (the native arithmetic then never overflows). */
export function limitFits(l: Pick<Limit, 'rate' | 'periodNs' | 'burst'>): boolean {
  return limitBucket(l).cap <= 1n << 62n;
}
