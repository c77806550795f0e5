/**
 * Which packets `nfsieve hook` sends to the queue: a superset, in terms the
 * kernel can match by itself, of every packet some rule of the policy can
 * match.
 *
 * Why that is exact. A packet no rule matches gets the policy's default
 * verdict and touches no counter, mark or queue number. So if the kernel
 * queues every packet some rule may match, and applies the default itself to
 * the rest (nothing to do for `accept`; a final DROP or REJECT otherwise),
 * every packet meets the verdict the policy gives it. Queuing more than
 * needed costs CPU, never correctness; queuing less would let the kernel's
 * default decide a packet the policy decides otherwise.
 *
 * How the superset is found. Each rule's compiled box (src/compile/normalize)
 * is cut by the packet-space shapes of src/compile/space (TCP, the UDP port
 * cases, ICMP of the family, ESP, other protocols, later fragments); each
 * non-empty piece becomes a kernel selector for that shape: the protocol, plus
 * the destination (or source) ports the piece allows, or its ICMP types; and
 * the rule's positive input interfaces and ctstate (when it needs a known
 * state) in front. Kernel matches see what nfsieve sees, with these
 * differences handled here: IPv4's `-p` reads the IP header, so AH-protected
 * traffic (protocol 51) is queued whole whenever any protocol is; port and
 * ICMP matches never match later fragments, which only rules without port or
 * ICMP conditions reach, and those become whole-protocol selectors. An
 * `ip-proto` (IPv4) or `nf-proto` (IPv6) condition is `-p` itself.
 */
import { CT_STATE_KEYS, Field, fieldInfo } from '../compile/fields';
import { canonical, FamilyRule, Interval, normalize } from '../compile/normalize';
import { meet, packetShapes, PROTO_AH, PROTO_ESP, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from '../compile/space';
import { Policy } from '../policy/model';

export interface Selector {
  /** IP protocol number (IPv4: the header's; IPv6: after extension headers), or null for any. */
  proto: number | null;
  ports?: { dir: 'sport' | 'dport'; ranges: Interval[] };
  /** ICMP (or ICMPv6) type/code keys, type * 256 + code. */
  icmp?: Interval[];
  /** Input interface pattern (iptables form, `+` wildcard). */
  iface?: string;
  /** ctstate keys (compile/fields.ts CT_STATE_KEYS), none of them 0. */
  ctstate?: number[];
}

/** Above this many protocols (or ICMP entries) a selector becomes "any" (or the whole protocol). */
const MAX_LIST = 16;
const PORT_TOP = 65535;
const ICMP_TOP = 65535;

const width = (ivs: Interval[]): number => ivs.reduce((n, iv) => n + Number(iv.hi) - Number(iv.lo) + 1, 0);
const clip = (ivs: Interval[], top: number): Interval[] =>
  ivs.filter((iv) => Number(iv.lo) <= top).map((iv) => ({ lo: Number(iv.lo), hi: Math.min(Number(iv.hi), top) }));
const values = (ivs: Interval[]): number[] => ivs.flatMap((iv) => Array.from({ length: Number(iv.hi) - Number(iv.lo) + 1 }, (_, i) => Number(iv.lo) + i));

/**
 * Port selector of a TCP/UDP piece, or none when both port sets are whole:
 * the direction the rule itself constrains (the narrower if both), else the
 * one the shape fixes (IKE's 500 on either side).
 */
function portsOf(box: Map<Field, Interval[]>, rule: FamilyRule): Selector['ports'] {
  const d = clip(box.get(Field.Dport) ?? [{ lo: 0, hi: PORT_TOP }], PORT_TOP);
  const s = clip(box.get(Field.Sport) ?? [{ lo: 0, hi: PORT_TOP }], PORT_TOP);
  const full = (x: Interval[]): boolean => width(x) === PORT_TOP + 1;
  if (full(d) && full(s)) return undefined;
  const ruleD = rule.dims.has(Field.Dport) && !full(d), ruleS = rule.dims.has(Field.Sport) && !full(s);
  const pickD = ruleD && ruleS ? width(d) <= width(s) : ruleD || (!ruleS && (full(s) || (!full(d) && width(d) <= width(s))));
  return pickD ? { dir: 'dport', ranges: d } : { dir: 'sport', ranges: s };
}

/** Protocol selectors for a list of protocol intervals: one per value, or "any" when there are too many. */
function protocols(ivs: Interval[]): Selector[] {
  const clipped = clip(ivs, 255);
  if (width(clipped) > MAX_LIST) return [{ proto: null }];
  return values(clipped).map((p) => ({ proto: p }));
}

/** What the kernel must queue, in one family, for one rule (without interface and ctstate). */
function pieces(rule: FamilyRule, family: 4 | 6): Selector[] {
  const direct = family === 4 ? rule.dims.get(Field.IpProto) : rule.dims.get(Field.NfProto);
  if (direct) return protocols(direct);
  const out: Selector[] = [];
  const icmpProto = family === 4 ? PROTO_ICMP : PROTO_ICMPV6;
  for (const s of packetShapes(family)) {
    const box = meet(rule, s, family);
    if (!box) continue;
    if (s.name === 'udp-short') out.push({ proto: PROTO_UDP });
    else if (s.name === 'tcp' || s.name.startsWith('udp')) {
      out.push({ proto: s.name === 'tcp' ? PROTO_TCP : PROTO_UDP, ports: portsOf(box, rule) });
    } else if (s.name === 'icmp') {
      const icmp = clip(box.get(Field.Icmp)!, ICMP_TOP);
      out.push({ proto: icmpProto, icmp: width(icmp) === ICMP_TOP + 1 ? undefined : icmp });
    } else if (s.name === 'esp') out.push({ proto: PROTO_ESP });
    else out.push(...protocols(box.get(Field.Proto) ?? [{ lo: 0, hi: 255 }]));
  }
  // IPv4 -p reads the IP header: AH-protected traffic is protocol 51 there.
  if (family === 4 && out.some((x) => x.proto !== null)) out.push({ proto: PROTO_AH });
  return out;
}

/** The rule's positive input interfaces and a ctstate set the kernel can match (one that excludes "not known"). */
function context(rule: FamilyRule): { ifaces: (string | undefined)[]; ctstate?: number[] } {
  const inRes = rule.residuals.find((r) => r.kind === 'in' && !r.negate);
  const ifaces = inRes && inRes.kind === 'in' && inRes.patterns.length <= MAX_LIST ? inRes.patterns : [undefined];
  const ct = rule.dims.get(Field.CtState);
  const keys = ct ? values(clip(ct, Number(fieldInfo(Field.CtState, 4).present))) : [];
  return { ifaces, ctstate: ct && keys.length > 0 && !keys.includes(0) ? keys : undefined };
}

const contextKey = (s: Selector): string => `${s.iface ?? ''}|${(s.ctstate ?? []).join(',')}`;

/** Merge selectors: a whole protocol absorbs its port and ICMP selectors, port sets and ICMP sets are unioned. */
function merge(list: Selector[]): Selector[] {
  const groups = new Map<string, Selector[]>();
  for (const s of list) groups.set(contextKey(s), [...(groups.get(contextKey(s)) ?? []), s]);
  const plain = groups.get('|') ?? [];
  const plainAny = plain.some((s) => s.proto === null);
  const plainWhole = new Set(plain.filter((s) => !s.ports && !s.icmp).map((s) => s.proto));
  const out: Selector[] = [];
  for (const [key, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (key !== '|' && plainAny) continue;
    const ctx = { ...(group[0].iface ? { iface: group[0].iface } : {}), ...(group[0].ctstate ? { ctstate: group[0].ctstate } : {}) };
    if (group.some((s) => s.proto === null)) { out.push({ proto: null, ...ctx }); continue; }
    const protos = [...new Set(group.map((s) => s.proto as number))].sort((a, b) => a - b);
    for (const p of protos) {
      if (key !== '|' && plainWhole.has(p)) continue;
      const mine = group.filter((s) => s.proto === p);
      if (mine.some((s) => !s.ports && !s.icmp)) { out.push({ proto: p, ...ctx }); continue; }
      for (const dir of ['dport', 'sport'] as const) {
        const ranges = canonical(mine.flatMap((s) => (s.ports?.dir === dir ? s.ports.ranges : [])));
        if (ranges.length > 0) out.push({ proto: p, ports: { dir, ranges }, ...ctx });
      }
      const icmp = canonical(mine.flatMap((s) => s.icmp ?? []));
      if (icmp.length > 0) out.push({ proto: p, icmp, ...ctx });
    }
  }
  return out;
}

/** The selectors of one family for a whole policy (every rule, whatever its action: counters count too). */
export function policySelectors(policy: Policy, family: 4 | 6): Selector[] {
  const all: Selector[] = [];
  for (const rule of policy.rules) {
    const fr = normalize(rule, family);
    if (!fr) continue;
    const { ifaces, ctstate } = context(fr);
    for (const piece of pieces(fr, family)) {
      for (const iface of ifaces) all.push({ ...piece, ...(iface ? { iface } : {}), ...(ctstate ? { ctstate } : {}) });
    }
  }
  return merge(all);
}

export const CT_STATE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(CT_STATE_KEYS).map(([k, v]) => [v, k]));
