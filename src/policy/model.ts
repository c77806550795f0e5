/**
 * The policy model: an ordered list of rules (first match wins) and a default
 * verdict. Every condition is already resolved to numbers here (names looked
 * up, text parsed); the YAML/JSON reader (parse.ts), the typed builder
 * (define.ts) and the iptables importer all produce this model, and both the
 * compiler and the reference evaluator consume it.
 */

/** A closed range of unsigned integers [lo, hi]. */
export interface Range { lo: number; hi: number }

/** An address prefix: family, 4 or 16 bytes, prefix length. */
export interface Prefix { family: 4 | 6; bytes: Uint8Array; length: number }

/** An address range (same family at both ends, inclusive). */
export interface AddressRange { family: 4 | 6; lo: Uint8Array; hi: Uint8Array }

export type AddressItem = { kind: 'prefix'; prefix: Prefix } | { kind: 'range'; range: AddressRange };

/** A condition on one field: any of `values`, or none of them when negated. */
export interface Cond<T> { negate: boolean; values: T[] }

/** Reference to named sets: the packet field must be in any of them. */
export interface SetCond { negate: boolean; sets: string[] }

export type CtState = 'invalid' | 'new' | 'established' | 'related' | 'untracked';
export const CT_STATES: readonly CtState[] = ['invalid', 'new', 'established', 'related', 'untracked'];

/** Kernel hotdrop cases beyond a short transport header (see l4Avail). */
export type TruncatedKind = 'ah' | 'tcp-frag1' | 'ipv6-hdr';

export interface Conditions {
  family?: 4 | 6;
  src?: Cond<AddressItem> | SetCond;
  dst?: Cond<AddressItem> | SetCond;
  /** Upper-layer protocol (past IPv6 extension headers and AH). */
  proto?: Cond<number>;
  /** Protocol field of the IP header itself (iptables' -p in IPv4 sees AH as 51). */
  ipProto?: Cond<number>;
  /** The protocol as ipv6_find_hdr() finds it (ip6tables' -p); IPv4: the IP header's field. */
  nfProto?: Cond<number>;
  /** iptables-nft's meta l4proto: IPv6 ipv6_find_hdr() stopping at AH (51); absent when it fails. IPv4: the header's field. */
  nftProto?: Cond<number>;
  sport?: Cond<Range>;
  dport?: Cond<Range>;
  /** The ports iptables-nft's payload loads read (see DecodedPacket.nftSport); written by imports. */
  nftSport?: Cond<Range>;
  nftDport?: Cond<Range>;
  spi?: Cond<Range> | SetCond;
  ahSpi?: Cond<Range> | SetCond;
  /** ICMP (family 4) and ICMPv6 (family 6) type/code: code range 0-255 means any code. */
  icmp?: Cond<{ v6: boolean; type: number; code: Range }>;
  ikeVersion?: Cond<number>;
  ikeExchange?: Cond<number>;
  /** IKE flag bits that must be set (`set`) and clear (`clear`), from initiator/response. */
  ikeFlags?: { set: number; clear: number };
  /**
   * An initial request (true) or any other IKE message (false): IKEv2
   * IKE_SA_INIT with the Initiator flag, without the Response flag and with a
   * zero responder SPI; IKEv1's first Main or Aggressive Mode message
   * (responder cookie zero).
   */
  ikeInitial?: boolean;
  /** An IKEv2 initial request whose first payload is a COOKIE notify (RFC 7296 section 2.6), or not. */
  ikeCookie?: boolean;
  natt?: Cond<number>; // 0 none, 1 ike, 2 esp, 3 keepalive
  fragment?: Cond<number>; // 0 none, 1 first, 2 later
  in?: Cond<string>;
  out?: Cond<string>;
  ctstate?: Cond<CtState>;
  mark?: { value: number; mask: number; negate: boolean };
  length?: Cond<Range>;
  malformed?: boolean;
  /**
   * Kernel fidelity (iptables import): bytes present at the transport header
   * as netfilter locates it (IPv4: after the IP header; IPv6: where
   * ipv6_find_hdr() stopped). Absent for later fragments and unreadable IPv6
   * header chains. The kernel's tcp/udp/icmp/esp/ah/multiport matches drop a
   * packet outright ("hotdrop") when fewer bytes than they read are there.
   */
  l4Avail?: Cond<Range>;
  /** Kernel fidelity: the other hotdrop cases (IPv6 AH cut short, IPv4 TCP fragment at offset 1, an IPv6 header chain ipv6_find_hdr() cannot walk). */
  truncated?: TruncatedKind;
}

export type Verdict = 'accept' | 'drop' | 'reject';

export type Action =
  | { type: 'accept' | 'drop' | 'reject' }
  /** NF_REPEAT: hand the packet back to the same netfilter hook (with a new mark, to take another path). */
  | { type: 'repeat' }
  | { type: 'queue'; queue: number }
  | { type: 'mark'; value: number; mask: number; then: 'accept' | 'continue' | 'repeat' }
  | { type: 'count' }
  /** Jump forward to rule index `to` (iptables RETURN and goto, flattened). */
  | { type: 'skip'; to: number };

/**
 * A rate limit (iptables' hashlimit, nftables' `limit rate`): the rule
 * matches only while under `rate` packets per `periodNs`, with up to `burst`
 * saved; one bucket for the rule, or one per source address (IPv4 keyed by
 * its first `prefix4` bits, IPv6 by `prefix6`), at most `maxSources` of them
 * (least recently used evicted).
 */
export interface Limit {
  rate: number;
  periodNs: bigint;
  burst: number;
  per: 'rule' | 'src';
  prefix4: number;
  prefix6: number;
  maxSources: number;
}

export const LIMIT_DEFAULT_BURST = 5;
export const LIMIT_DEFAULT_MAX_SOURCES = 65536;
export const LIMIT_MAX_SOURCES = 1 << 24;
export const LIMIT_DEFAULT_PREFIX4 = 32;
export const LIMIT_DEFAULT_PREFIX6 = 64;
/** Rate units and their length in nanoseconds (iptables' spellings). */
export const LIMIT_UNITS: Record<string, bigint> = {
  s: 1_000_000_000n, sec: 1_000_000_000n, second: 1_000_000_000n,
  m: 60_000_000_000n, min: 60_000_000_000n, minute: 60_000_000_000n,
  h: 3_600_000_000_000n, hour: 3_600_000_000_000n,
  d: 86_400_000_000_000n, day: 86_400_000_000_000n,
};

export interface Rule {
  /** The name given in the policy, or null (then shown as its 1-based position). */
  name: string | null;
  /** Free text kept with the rule (`comment:`; an imported `-m comment`). */
  comment?: string;
  /**
   * Further conjuncts (all must hold too): the conditions of the jumps that
   * lead to this rule when iptables chains are flattened.
   */
  extra?: Conditions[];
  /** 1-based line and column of the rule in its source file (0 when built in code). */
  line: number;
  column: number;
  conditions: Conditions;
  /** Checked last, once every condition holds: only such packets take a token. */
  limit?: Limit;
  action: Action;
}

export type SetKind = 'address' | 'spi';

export interface NamedSet {
  name: string;
  kind: SetKind;
  addresses: Prefix[];
  spis: Range[];
}

export interface Policy {
  /** Where the policy came from (for messages); '<code>' when built in code. */
  source: string;
  default: Verdict;
  rules: Rule[];
  sets: Map<string, NamedSet>;
}

export const PROTOCOLS: Record<string, number> = {
  icmp: 1, igmp: 2, ipip: 4, tcp: 6, egp: 8, udp: 17, ipv6: 41, rsvp: 46, gre: 47, esp: 50, ah: 51,
  icmpv6: 58, 'ipv6-icmp': 58, ospf: 89, pim: 103, vrrp: 112, l2tp: 115, sctp: 132, mh: 135, udplite: 136, all: -1,
};

/** ICMP type names (iptables' and RFC 792/4443 spellings), with optional code. */
export const ICMP_TYPES: Record<string, { type: number; code?: number }> = {
  'echo-reply': { type: 0 }, pong: { type: 0 },
  'destination-unreachable': { type: 3 },
  'network-unreachable': { type: 3, code: 0 }, 'host-unreachable': { type: 3, code: 1 },
  'protocol-unreachable': { type: 3, code: 2 }, 'port-unreachable': { type: 3, code: 3 },
  'fragmentation-needed': { type: 3, code: 4 }, 'source-route-failed': { type: 3, code: 5 },
  'network-unknown': { type: 3, code: 6 }, 'host-unknown': { type: 3, code: 7 },
  'network-prohibited': { type: 3, code: 9 }, 'host-prohibited': { type: 3, code: 10 },
  'TOS-network-unreachable': { type: 3, code: 11 }, 'TOS-host-unreachable': { type: 3, code: 12 },
  'communication-prohibited': { type: 3, code: 13 }, 'host-precedence-violation': { type: 3, code: 14 },
  'precedence-cutoff': { type: 3, code: 15 },
  'source-quench': { type: 4 }, redirect: { type: 5 },
  'network-redirect': { type: 5, code: 0 }, 'host-redirect': { type: 5, code: 1 },
  'TOS-network-redirect': { type: 5, code: 2 }, 'TOS-host-redirect': { type: 5, code: 3 },
  'echo-request': { type: 8 }, ping: { type: 8 },
  'router-advertisement': { type: 9 }, 'router-solicitation': { type: 10 },
  'time-exceeded': { type: 11 }, 'ttl-exceeded': { type: 11 },
  'ttl-zero-during-transit': { type: 11, code: 0 }, 'ttl-zero-during-reassembly': { type: 11, code: 1 },
  'parameter-problem': { type: 12 }, 'ip-header-bad': { type: 12, code: 0 }, 'required-option-missing': { type: 12, code: 1 },
  'timestamp-request': { type: 13 }, 'timestamp-reply': { type: 14 },
  'information-request': { type: 15 }, 'information-reply': { type: 16 },
  'address-mask-request': { type: 17 }, 'address-mask-reply': { type: 18 },
};

export const ICMPV6_TYPES: Record<string, { type: number; code?: number }> = {
  'destination-unreachable': { type: 1 }, 'no-route': { type: 1, code: 0 },
  'communication-prohibited': { type: 1, code: 1 }, 'beyond-scope': { type: 1, code: 2 },
  'address-unreachable': { type: 1, code: 3 }, 'port-unreachable': { type: 1, code: 4 },
  'failed-policy': { type: 1, code: 5 }, 'reject-route': { type: 1, code: 6 },
  'packet-too-big': { type: 2 },
  'time-exceeded': { type: 3 }, 'ttl-exceeded': { type: 3 },
  'ttl-zero-during-transit': { type: 3, code: 0 }, 'ttl-zero-during-reassembly': { type: 3, code: 1 },
  'parameter-problem': { type: 4 }, 'bad-header': { type: 4, code: 0 },
  'unknown-header-type': { type: 4, code: 1 }, 'unknown-option': { type: 4, code: 2 },
  'echo-request': { type: 128 }, ping: { type: 128 }, 'echo-reply': { type: 129 }, pong: { type: 129 },
  'mld-listener-query': { type: 130 }, 'mld-listener-report': { type: 131 }, 'mld-listener-done': { type: 132 },
  'router-solicitation': { type: 133 }, 'router-advertisement': { type: 134 },
  'neighbour-solicitation': { type: 135 }, 'neighbor-solicitation': { type: 135 },
  'neighbour-advertisement': { type: 136 }, 'neighbor-advertisement': { type: 136 },
  redirect: { type: 137 }, 'mld2-listener-report': { type: 143 },
};

export const IKE_EXCHANGE_NAMES: Record<string, number> = {
  base: 1, 'identity-protection': 2, 'main-mode': 2, 'authentication-only': 3, aggressive: 4,
  'informational-v1': 5, 'quick-mode': 32, 'new-group-mode': 33,
  ike_sa_init: 34, 'ike-sa-init': 34, ike_auth: 35, 'ike-auth': 35,
  create_child_sa: 36, 'create-child-sa': 36, informational: 37, ike_session_resume: 38,
};

export const NATT_KINDS: Record<string, number> = { none: 0, ike: 1, esp: 2, keepalive: 3 };
export const FRAGMENTS: Record<string, number> = { none: 0, first: 1, later: 2 };

/** IKEv2 header flags (RFC 7296 section 3.1). */
export const IKE_FLAG_INITIATOR = 0x08;
export const IKE_FLAG_RESPONSE = 0x20;

/** A display name for a rule: its name, or its 1-based position. */
export function ruleLabel(rule: Rule, index: number): string | number {
  return rule.name ?? index + 1;
}
