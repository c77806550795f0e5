/**
 * Policy model -> policy document (YAML), the inverse of interpret.ts: what
 * `nfsieve import iptables` prints. Flattened chains use the two keys only
 * imports need: `and` (further conjuncts) and the action `{skip-to: N}`.
 */
import { stringify } from 'yaml';
import { formatAddress } from '../decode/address';
import { AddressItem, Cond, Conditions, Limit, LIMIT_DEFAULT_MAX_SOURCES, LIMIT_DEFAULT_PREFIX4, LIMIT_DEFAULT_PREFIX6, Policy, Range, Rule, SetCond } from './model';

const range = (r: Range, hex = false): string | number => {
  const f = (n: number): string => (hex ? `0x${n.toString(16)}` : String(n));
  return r.lo === r.hi ? (hex ? f(r.lo) : r.lo) : `${f(r.lo)}-${f(r.hi)}`;
};

function list<T>(c: Cond<T>, f: (v: T) => unknown): unknown {
  const values = c.values.map(f);
  const v = values.length === 1 ? values[0] : values;
  return c.negate ? { not: v } : v;
}

function address(item: AddressItem): string {
  if (item.kind === 'range') return `${formatAddress(item.range.lo)}-${formatAddress(item.range.hi)}`;
  const p = item.prefix;
  return p.length === p.bytes.length * 8 ? formatAddress(p.bytes) : `${formatAddress(p.bytes)}/${p.length}`;
}

function addressCond(c: Cond<AddressItem> | SetCond): unknown {
  if ('sets' in c) {
    const v = c.sets.map((s) => `@${s}`);
    return c.negate ? { not: v } : v.length === 1 ? v[0] : v;
  }
  return list(c, address);
}

const NATT = ['none', 'ike', 'esp', 'keepalive'];
const FRAG = ['none', 'first', 'later'];

export function conditionsDoc(c: Conditions): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  if (c.family) d.family = c.family;
  if (c.src) d.src = addressCond(c.src);
  if (c.dst) d.dst = addressCond(c.dst);
  if (c.proto) d.proto = list(c.proto, (v) => v);
  if (c.ipProto) d['ip-proto'] = list(c.ipProto, (v) => v);
  if (c.nfProto) d['nf-proto'] = list(c.nfProto, (v) => v);
  if (c.nftProto) d['nft-proto'] = list(c.nftProto, (v) => v);
  if (c.sport) d.sport = list(c.sport, (r) => range(r));
  if (c.dport) d.dport = list(c.dport, (r) => range(r));
  if (c.nftSport) d['nft-sport'] = list(c.nftSport, (r) => range(r));
  if (c.nftDport) d['nft-dport'] = list(c.nftDport, (r) => range(r));
  for (const [k, name] of [['spi', 'spi'], ['ahSpi', 'ah-spi']] as const) {
    const cond = c[k];
    if (!cond) continue;
    if ('sets' in cond) d[name] = cond.negate ? { not: cond.sets.map((s) => `@${s}`) } : cond.sets.map((s) => `@${s}`);
    else d[name] = list(cond, (r) => range(r, true));
  }
  if (c.icmp) {
    for (const v6 of [false, true]) {
      const values = c.icmp.values.filter((x) => x.v6 === v6);
      if (values.length === 0) continue;
      d[v6 ? 'icmpv6' : 'icmp'] = list({ negate: c.icmp.negate, values }, (x) => (x.code.lo === 0 && x.code.hi === 255 ? x.type : `${x.type}/${x.code.lo}`));
    }
  }
  if (c.ikeVersion || c.ikeExchange || c.ikeFlags || c.ikeInitial !== undefined || c.ikeCookie !== undefined) {
    const ike: Record<string, unknown> = {};
    if (c.ikeVersion) ike.version = list(c.ikeVersion, (v) => v);
    if (c.ikeExchange) ike.exchange = list(c.ikeExchange, (v) => v);
    if (c.ikeFlags) {
      if (c.ikeFlags.set & 0x08) ike.initiator = true;
      if (c.ikeFlags.clear & 0x08) ike.initiator = false;
      if (c.ikeFlags.set & 0x20) ike.response = true;
      if (c.ikeFlags.clear & 0x20) ike.response = false;
    }
    if (c.ikeInitial !== undefined) ike.initial = c.ikeInitial;
    if (c.ikeCookie !== undefined) ike.cookie = c.ikeCookie;
    d.ike = ike;
  }
  if (c.natt) d.natt = list(c.natt, (v) => NATT[v]);
  if (c.fragment) d.fragment = list(c.fragment, (v) => FRAG[v]);
  if (c.in) d.in = list(c.in, (v) => v);
  if (c.out) d.out = list(c.out, (v) => v);
  if (c.ctstate) d.ctstate = list(c.ctstate, (v) => v);
  if (c.mark) {
    const m = c.mark.mask === 0xffffffff ? `0x${c.mark.value.toString(16)}` : `0x${c.mark.value.toString(16)}/0x${c.mark.mask.toString(16)}`;
    d.mark = c.mark.negate ? { not: m } : m;
  }
  if (c.length) d.length = list(c.length, (r) => range(r));
  if (c.l4Avail) d['l4-avail'] = list(c.l4Avail, (r) => range(r));
  if (c.malformed !== undefined) d.malformed = c.malformed;
  if (c.truncated) d.truncated = c.truncated;
  return d;
}

const UNIT_NAMES: [bigint, string][] = [[86_400_000_000_000n, 'day'], [3_600_000_000_000n, 'hour'], [60_000_000_000n, 'min'], [1_000_000_000n, 's']];

function limitDoc(l: Limit): Record<string, unknown> {
  const unit = UNIT_NAMES.find(([ns]) => ns === l.periodNs)?.[1] ?? 's';
  const d: Record<string, unknown> = { rate: `${l.rate}/${unit}`, burst: l.burst };
  if (l.per === 'src') {
    d.per = 'src';
    if (l.prefix4 !== LIMIT_DEFAULT_PREFIX4) d['per-prefix4'] = l.prefix4;
    if (l.prefix6 !== LIMIT_DEFAULT_PREFIX6) d['per-prefix6'] = l.prefix6;
    if (l.maxSources !== LIMIT_DEFAULT_MAX_SOURCES) d['max-sources'] = l.maxSources;
  }
  return d;
}

function ruleDoc(r: Rule): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  if (r.name !== null) d.name = r.name;
  if (r.comment !== undefined) d.comment = r.comment;
  Object.assign(d, conditionsDoc(r.conditions));
  const extra = (r.extra ?? []).map(conditionsDoc).filter((x) => Object.keys(x).length > 0);
  if (extra.length) d.and = extra;
  if (r.limit) d.limit = limitDoc(r.limit);
  const a = r.action;
  switch (a.type) {
    case 'queue': d.action = { queue: a.queue }; break;
    case 'mark': d.action = { mark: a.mask === 0xffffffff ? `0x${a.value.toString(16)}` : `0x${a.value.toString(16)}/0x${a.mask.toString(16)}`, then: a.then }; break;
    case 'skip': d.action = { 'skip-to': a.to + 1 }; break;
    default: d.action = a.type;
  }
  return d;
}

export function policyToYaml(p: Policy, comment?: string): string {
  const doc: Record<string, unknown> = { version: 1, default: p.default };
  if (p.sets.size) {
    doc.sets = Object.fromEntries([...p.sets.values()].map((s) => [s.name, s.kind === 'address'
      ? { type: 'address', elements: s.addresses.map((x) => address({ kind: 'prefix', prefix: x })) }
      : { type: 'spi', elements: s.spis.map((r) => range(r, true)) }]));
  }
  doc.rules = p.rules.map(ruleDoc);
  return (comment ? `# ${comment}\n` : '') + stringify(doc, { lineWidth: 0 });
}
