/**
 * Building a policy in code, with the same rules and messages as a policy
 * file: `definePolicy({ default: 'drop', rules: [...] })`. Errors name the
 * path of the bad value (`rules[2].dport: ...`).
 */
import { Policy } from './model';
import { interpretPolicy, PathPart } from './interpret';
import { PolicyError } from './parse';

/** One value, a list of them (any may match), or `{ not: ... }` (none may match). */
export type One<T> = T | T[] | { not: T | T[] };
/** A port or length: `500`, `'33434-33633'`, `'1024:'`. */
export type Port = number | string;

/** What a rule does when its conditions hold (docs/policy.md, "Actions"). */
export type ActionInput =
  | 'accept' | 'drop' | 'reject' | 'repeat' | 'count'
  | { queue: number }
  | { mark: number | string; then?: 'accept' | 'continue' | 'repeat' }
  | { 'skip-to': number };

/** The conditions of a rule (all must hold); every key a policy file accepts, values as there (docs/policy.md). */
export interface ConditionsInput {
  /** 4 or 6. */
  family?: 4 | 6 | 'ipv4' | 'ipv6';
  /** Source: addresses, prefixes, ranges (`10.0.0.1-10.0.0.9`) of either family, or `@set`. */
  src?: One<string>;
  /** Destination, as `src`. */
  dst?: One<string>;
  /** Upper-layer protocol (past IPv6 extension headers and AH): a name (`udp`, `esp`, `icmpv6`...) or 0-255. */
  proto?: One<string | number>;
  /** The IP header's own protocol field (51 for AH-protected traffic), as iptables' `-p` in IPv4. */
  'ip-proto'?: One<string | number>;
  /** The protocol as netfilter's ipv6_find_hdr() finds it (ip6tables' `-p`); IPv4: the header's field. */
  'nf-proto'?: One<string | number>;
  /** The protocol as iptables-nft's `meta l4proto` finds it: the same walk stopping at AH (51), nothing when it fails. */
  'nft-proto'?: One<string | number>;
  /** TCP/UDP source port. */
  sport?: One<Port>;
  /** TCP/UDP destination port. */
  dport?: One<Port>;
  /** The 2 bytes iptables-nft's source-port load reads (docs/policy.md); written by imports. */
  'nft-sport'?: One<Port>;
  /** The 2 bytes iptables-nft's destination-port load reads; written by imports. */
  'nft-dport'?: One<Port>;
  /** ESP SPI (IP protocol 50 and ESP-in-UDP on 4500): a number, a range, or `@set`. */
  spi?: One<number | string>;
  /** AH SPI, as `spi`. */
  'ah-spi'?: One<number | string>;
  /** ICMP (IPv4) type or type/code: `echo-request`, `8`, `'3/4'`. */
  icmp?: One<string | number>;
  /** ICMPv6 type or type/code: `packet-too-big`, `128`. */
  icmpv6?: One<string | number>;
  /** IKE header fields (any subset; `{}`: has an IKE header); `initial`: an IKE_SA_INIT request without a responder SPI, `cookie`: one carrying a COOKIE notify. */
  ike?: { version?: One<number>; exchange?: One<string | number>; initiator?: boolean; response?: boolean; initial?: boolean; cookie?: boolean };
  /** The RFC 3948 kind of a UDP 4500 payload. */
  natt?: One<'ike' | 'esp' | 'keepalive' | 'none'>;
  fragment?: One<'none' | 'first' | 'later'>;
  /** Input interface; a trailing `+` is a prefix wildcard. */
  in?: One<string>;
  /** Output interface, as `in`. */
  out?: One<string>;
  /** Conntrack state (from NFQUEUE); an unknown state matches only negated conditions. */
  ctstate?: One<'new' | 'established' | 'related' | 'invalid' | 'untracked'>;
  /** Packet mark under a mask: `0x10`, `'0x10/0xff'`, `{ not: 1 }`. */
  mark?: number | string | { not: number | string };
  /** IP total length (IPv6: 40 + payload length). */
  length?: One<Port>;
  /** Bytes present at the transport header where netfilter looks for it (`nfsieve import iptables` writes it). */
  'l4-avail'?: One<Port>;
  /** The decoder found a truncated or inconsistent header. */
  malformed?: boolean;
  /** A kernel hotdrop case (`nfsieve import iptables` writes it). */
  truncated?: 'ah' | 'tcp-frag1' | 'ipv6-hdr';
}

/** One rule: conditions (all must hold) and an action. Values as in a policy file. */
export interface RuleInput extends ConditionsInput {
  name?: string;
  comment?: string;
  action: ActionInput;
  /** Further conjuncts, each a mapping of conditions (flattened iptables chains). */
  and?: ConditionsInput[];
  /** Rate limit, checked once every other condition holds: `{rate: '20/s', burst: 40}` or `{rate: '5/s', burst: 10, per: 'src'}`. */
  limit?: LimitInput;
}

/** As in a policy file: rate `N/s|sec|second|m|min|minute|h|hour|d|day`; burst default 5; per-source keys and bound. */
export interface LimitInput {
  rate: string;
  burst?: number;
  per?: 'src' | 'rule';
  'per-prefix4'?: number;
  'per-prefix6'?: number;
  'max-sources'?: number;
}

/** A named set: addresses/prefixes (`type: address`, the default) or SPIs and SPI ranges (`type: spi`), inline or from a file. */
export interface SetInput {
  type?: 'address' | 'spi';
  elements?: (string | number)[];
  /** One element per line, `#` comments; relative to the policy file. */
  file?: string;
}

export interface PolicyInput {
  version?: 1;
  /** The verdict when no rule decides. */
  default: 'accept' | 'drop' | 'reject';
  sets?: Record<string, SetInput>;
  rules: RuleInput[];
}

function pathText(at: PathPart[]): string {
  return at.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || '(policy)';
}

/** Validate and build a policy from plain data. Throws PolicyError listing every problem. */
export function definePolicy(input: PolicyInput, options: { baseDir?: string } = {}): Policy {
  const diagnostics: { file: string; line: number; column: number; message: string }[] = [];
  const policy = interpretPolicy(input, {
    error: (at, message) => diagnostics.push({ file: '<code>', line: 0, column: 0, message: `${pathText(at)}: ${message}` }),
    locate: () => ({ line: 0, column: 0 }),
    baseDir: options.baseDir ?? process.cwd(),
    source: '<code>',
  });
  if (diagnostics.length) throw new PolicyError(diagnostics);
  return policy;
}
