/**
 * The fields a decision table can dispatch on, with their key domains. A key is
 * what the evaluator computes from a decoded packet (native/core/lanes.cc,
 * packet_key); `absent` is the key of a packet that has no such field (no
 * ports in an ICMP packet, no IKE header...). Negated conditions complement
 * within [0, present], so "sport != 500" never matches a packet without ports.
 *
 * These numbers are part of the table format (docs/table-format.md).
 */
import { AbsentKey, CtStateKey } from '../wire';

export const enum Field {
  Src = 1,
  Dst = 2,
  Proto = 3,
  IpProto = 4,
  Sport = 5,
  Dport = 6,
  Spi = 7,
  AhSpi = 8,
  Icmp = 9,
  IkeVersion = 10,
  IkeExchange = 11,
  IkeFlags = 12,
  Natt = 13,
  Fragment = 14,
  CtState = 15,
  Malformed = 16,
  Length = 17,
  Truncated = 18,
  NfProto = 19,
  L4Avail = 20,
  /** 0 not an initial request, 1 IKEv2 IKE_SA_INIT request, 2 IKEv1 first Main/Aggressive Mode message, 3 no IKE header. */
  IkeInitial = 21,
  /** 0 no COOKIE, 1 an IKEv2 initial request whose first payload is COOKIE, 2 no IKE header. */
  IkeCookie = 22,
  NftProto = 23,
  /** The 2 bytes iptables-nft's source-port load reads (native/core/decode.h nft_sport). */
  NftSport = 24,
  /** The 2 bytes iptables-nft's destination-port load reads (nft_dport). */
  NftDport = 25,
}

export interface FieldInfo {
  name: string;
  /** Largest key of a packet that has the field. */
  present: number | bigint;
  /** Largest key at all (the absent sentinel, when there is one). */
  max: number | bigint;
  /** 128-bit keys (IPv6 addresses). */
  wide: boolean;
}

const U32 = 0xffffffff;
const U128 = (1n << 128n) - 1n;

const INFO: Record<4 | 6, (FieldInfo | undefined)[]> = { 4: [], 6: [] };

/** A field's domain in one family (one shared, frozen object per field and family: the compiler asks per condition). */
export function fieldInfo(field: Field, family: 4 | 6): FieldInfo {
  return INFO[family][field] ??= Object.freeze(describe(field, family));
}

function describe(field: Field, family: 4 | 6): FieldInfo {
  switch (field) {
    case Field.Src:
    case Field.Dst:
      return family === 4
        ? { name: field === Field.Src ? 'src' : 'dst', present: U32, max: U32, wide: false }
        : { name: field === Field.Src ? 'src' : 'dst', present: U128, max: U128, wide: true };
    case Field.Proto: return { name: 'proto', present: 255, max: 255, wide: false };
    case Field.IpProto: return { name: 'ip-proto', present: 255, max: 255, wide: false };
    case Field.Sport: return { name: 'sport', present: 65535, max: AbsentKey.Port, wide: false };
    case Field.Dport: return { name: 'dport', present: 65535, max: AbsentKey.Port, wide: false };
    case Field.Spi: return { name: 'spi', present: U32, max: U32 + 1, wide: false };
    case Field.AhSpi: return { name: 'ah-spi', present: U32, max: U32 + 1, wide: false };
    case Field.Icmp: return { name: 'icmp', present: 65535, max: AbsentKey.Icmp, wide: false };
    case Field.IkeVersion: return { name: 'ike.version', present: 15, max: AbsentKey.IkeVersion, wide: false };
    case Field.IkeExchange: return { name: 'ike.exchange', present: 255, max: AbsentKey.IkeExchange, wide: false };
    case Field.IkeFlags: return { name: 'ike.flags', present: 255, max: AbsentKey.IkeFlags, wide: false };
    case Field.Natt: return { name: 'natt', present: 3, max: 3, wide: false };
    case Field.Fragment: return { name: 'fragment', present: 2, max: 2, wide: false };
    case Field.CtState: return { name: 'ctstate', present: 5, max: 5, wide: false };
    case Field.Malformed: return { name: 'malformed', present: 255, max: 255, wide: false };
    case Field.Length: return { name: 'length', present: U32, max: U32, wide: false };
    case Field.Truncated: return { name: 'truncated', present: 9, max: 9, wide: false };
    case Field.NfProto: return { name: 'nf-proto', present: 255, max: AbsentKey.NfProto, wide: false };
    case Field.L4Avail: return { name: 'l4-avail', present: 65535, max: AbsentKey.L4Avail, wide: false };
    case Field.IkeInitial: return { name: 'ike.initial', present: 2, max: 3, wide: false };
    case Field.IkeCookie: return { name: 'ike.cookie', present: 1, max: 2, wide: false };
    case Field.NftProto: return { name: 'nft-proto', present: 255, max: AbsentKey.NfProto, wide: false };
    case Field.NftSport: return { name: 'nft-sport', present: 65535, max: AbsentKey.Port, wide: false };
    case Field.NftDport: return { name: 'nft-dport', present: 65535, max: AbsentKey.Port, wide: false };
  }
}

/** ctstate keys: 0 is "not known" (no conntrack information supplied). */
export const CT_STATE_KEYS: Record<string, number> = {
  invalid: CtStateKey.Invalid, new: CtStateKey.New, established: CtStateKey.Established, related: CtStateKey.Related, untracked: CtStateKey.Untracked,
};

/**
 * Kernel hotdrop cases that are not "too few bytes at the transport header"
 * (that one is the l4-avail field); 0 is "none". An IPv6 packet can be both
 * 'ah' and 'ipv6-hdr' (key 9): TRUNCATED_MATCH lists the keys each kind holds for.
 */
export const TRUNCATED_KEYS: Record<string, number> = { ah: 6, 'tcp-frag1': 7, 'ipv6-hdr': 8 };
export const TRUNCATED_BOTH = 9;
export const TRUNCATED_MATCH: Record<string, number[]> = { ah: [6, TRUNCATED_BOTH], 'tcp-frag1': [7], 'ipv6-hdr': [8, TRUNCATED_BOTH] };

/** Keys of the derived IKE fields (native/core/decode.h IkeInitial, IkeCookie). */
export const IKE_INITIAL_KEYS = { none: 0, v2: 1, v1: 2, absent: 3 } as const;
export const IKE_COOKIE_KEYS = { none: 0, cookie: 1, absent: 2 } as const;
