/**
 * `nfsieve hook --offload`: the rules the kernel can decide exactly by itself,
 * placed in front of the queue rules, so that a gateway's bulk traffic (ESP and
 * IKE from known peers) never crosses to user space.
 *
 * A rule is offloaded when (1) its conditions are all ones the kernel matches
 * the same way: a protocol, TCP/UDP destination or source ports, source or
 * destination prefixes, membership of a named address set (through an ipset
 * of the same name, `NAME` for IPv4 and `NAME-v6` for IPv6); no negation,
 * no IKE, NAT-T, SPI, ICMP, interface, mark or ctstate condition; and its
 * action is accept or drop with no mark; and (2) no earlier rule that is not
 * offloaded can match any packet it matches (their boxes, cut by the packet
 * shapes of src/compile/space.ts, do not meet; a named set counts as "may
 * hold anything"). Then a packet an offloaded rule matches in the kernel is
 * one whose first matching rule in the policy is an offloaded rule with the
 * same verdict, in the same order. What an offloaded rule does not catch in
 * the kernel (AH-protected traffic under IPv4's `-p`, set members the ipset
 * does not hold yet) still reaches the queue rules, which are unchanged.
 *
 * The ipsets only ever need to be a subset of the policy's live sets: a member
 * missing from an ipset sends its packets to nfsieve, which decides them as the
 * policy says; a member the live set no longer has would not. So whoever keeps
 * them in step (`nfsieve run`) must add to the live set before the ipset, and
 * delete from the ipset before the live set.
 */
import { FamilyRule, intersect, Interval, normalize } from '../compile/normalize';
import { live, PROTO_ESP, PROTO_SCTP, PROTO_TCP, PROTO_UDP } from '../compile/space';
import { formatAddress } from '../decode/address';
import { AddressItem, Policy, Rule } from '../policy/model';

export interface Offload {
  /** Indices of the offloaded rules, in policy order. */
  rules: number[];
  /** Named sets their conditions use. */
  sets: string[];
}

const OFFLOADABLE = new Set(['family', 'src', 'dst', 'proto', 'sport', 'dport']);
const KERNEL_PROTOS = new Set([PROTO_TCP, PROTO_UDP, PROTO_ESP, PROTO_SCTP]);
const PORT_PROTOS = new Set([PROTO_TCP, PROTO_UDP, PROTO_SCTP]);

/** Are the rule's conditions and action all ones the kernel matches exactly as nfsieve does? */
function expressible(rule: Rule): boolean {
  const a = rule.action;
  if (a.type !== 'accept' && a.type !== 'drop') return false;
  if (rule.limit) return false; // a rate limit is nfsieve's to count
  if (rule.extra && rule.extra.length > 0) return false;
  const c = rule.conditions as Record<string, unknown>;
  for (const [k, v] of Object.entries(c)) if (v !== undefined && !OFFLOADABLE.has(k)) return false;
  const { src, dst, proto, sport, dport } = rule.conditions;
  for (const x of [src, dst, proto, sport, dport]) if (x && x.negate) return false;
  for (const x of [src, dst]) if (x && !('sets' in x) && x.values.some((v) => v.kind !== 'prefix')) return false;
  if (!proto || proto.values.length !== 1 || !KERNEL_PROTOS.has(proto.values[0])) return false;
  if ((sport || dport) && !PORT_PROTOS.has(proto.values[0])) return false;
  return !(sport && dport); // one port match per kernel rule keeps the rule count linear
}

/** Can some packet match both rules (in either family)? Named sets may hold anything. */
function overlap(a: Rule, b: Rule): boolean {
  for (const family of [4, 6] as const) {
    const x = normalize(a, family), y = normalize(b, family);
    if (!x || !y) continue;
    const dims = new Map(x.dims);
    let empty = false;
    for (const [f, ivs] of y.dims) {
      const next = dims.has(f) ? intersect(dims.get(f)!, ivs) : ivs;
      if (next.length === 0) empty = true;
      dims.set(f, next);
    }
    const both: FamilyRule = { dims, residuals: [...x.residuals, ...y.residuals] };
    if (!empty && live(both, family)) return true;
  }
  return false;
}

/** Which rules the kernel can decide in front of the queue, exactly. Policies with skips offload nothing. */
export function offloadable(policy: Policy): Offload {
  if (policy.rules.some((r) => r.action.type === 'skip')) return { rules: [], sets: [] };
  const chosen: number[] = [];
  policy.rules.forEach((rule, i) => {
    if (!expressible(rule) || (!live(normalize(rule, 4), 4) && !live(normalize(rule, 6), 6))) return;
    for (let j = 0; j < i; j++) if (!chosen.includes(j) && overlap(policy.rules[j], rule)) return;
    chosen.push(i);
  });
  const sets = new Set<string>();
  for (const i of chosen) for (const k of ['src', 'dst'] as const) {
    const c = policy.rules[i].conditions[k];
    if (c && 'sets' in c) c.sets.forEach((s) => sets.add(s));
  }
  return { rules: chosen, sets: [...sets].sort() };
}

/** The ipset holding one family's members of a named set. */
export const ipsetName = (set: string, family: 4 | 6): string => (family === 4 ? set : `${set}-v6`);

const prefixText = (item: AddressItem): string => (item.kind === 'prefix' ? `${formatAddress(item.prefix.bytes)}/${item.prefix.length}` : '');

/** An address match: a named set (ipset or nftables set, per family) or one prefix. */
export type AddressMatch = { set: string } | { prefix: string };

/** One kernel rule's matches for an offloaded rule (without the verdict). */
export interface OffloadMatch {
  src: AddressMatch | null;
  dst: AddressMatch | null;
  proto: number;
  ports: { dir: 'sport' | 'dport'; ranges: Interval[] } | null;
}

/** The kernel rules (one per source x destination alternative) an offloaded rule needs in one family. */
export function offloadAlternatives(rule: Rule, family: 4 | 6): OffloadMatch[] {
  const c = rule.conditions;
  if ((c.family !== undefined && c.family !== family) || !normalize(rule, family)) return [];
  const addr = (k: 'src' | 'dst'): (AddressMatch | null)[] => {
    const cond = c[k];
    if (!cond) return [null];
    if ('sets' in cond) return cond.sets.map((s) => ({ set: ipsetName(s, family) }));
    return cond.values.filter((v) => v.kind === 'prefix' && v.prefix.family === family).map((v) => ({ prefix: prefixText(v) }));
  };
  const port = c.dport ?? c.sport;
  const ports = port ? { dir: c.dport ? 'dport' as const : 'sport' as const, ranges: port.values.map((r) => ({ lo: r.lo, hi: r.hi })) } : null;
  const out: OffloadMatch[] = [];
  for (const src of addr('src')) for (const dst of addr('dst')) out.push({ src, dst, proto: c.proto!.values[0], ports });
  return out;
}

/** The named sets of a policy that the offloaded rules refer to, per family, with their members. */
export function offloadSets(policy: Policy, chosen: number[]): { name: string; family: 4 | 6; members: string[] }[] {
  const used = new Set(chosen.flatMap((i) => ([4, 6] as const).flatMap((f) => offloadAlternatives(policy.rules[i], f)))
    .flatMap((m) => [m.src, m.dst]).filter((a): a is { set: string } => a !== null && 'set' in a).map((a) => a.set));
  const out: { name: string; family: 4 | 6; members: string[] }[] = [];
  for (const s of policy.sets.values()) {
    for (const family of [4, 6] as const) {
      const name = ipsetName(s.name, family);
      if (used.has(name)) out.push({ name, family, members: s.addresses.filter((p) => p.family === family).map((p) => `${formatAddress(p.bytes)}/${p.length}`) });
    }
  }
  return out;
}

/** Shell commands creating the ipsets (idempotent) and loading the policy's members into each. */
export function ipsetInstall(sets: { name: string; family: 4 | 6; members: string[] }[]): string[] {
  const out: string[] = [];
  for (const s of sets) {
    // `timeout 0`: members may carry their own timeouts (run --offload gives live members nfsieve's, shortened).
    // A set of that name created without it (an older hook) is replaced by one with it, atomically, by swap.
    const create = `hash:net family ${s.family === 4 ? 'inet' : 'inet6'} timeout 0`;
    out.push(`ipset create -exist ${s.name} ${create} 2>/dev/null || { ipset create ${s.name}.t ${create} && ipset swap ${s.name}.t ${s.name} && ipset destroy ${s.name}.t; }`);
    // Replaced whole: flush, then the members. Meanwhile a member missing from the ipset is only queued.
    out.push(`ipset flush ${s.name}`);
    if (s.members.length > 0) out.push(`ipset restore -exist <<'EOF'`, ...s.members.map((m) => `add ${s.name} ${m}`), 'EOF');
  }
  return out;
}

/** Shell commands destroying the ipsets listed in $nfsieve_sets (once the rules naming them are gone). */
export function ipsetDelete(): string[] {
  return ['for s in $nfsieve_sets; do ipset destroy "$s"; done'];
}

