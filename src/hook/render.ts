/**
 * `nfsieve hook`'s output: the selectors of src/hook/select.ts as an
 * idempotent shell script of iptables/ip6tables commands, or as an nftables
 * ruleset for `nft -f`, and the commands that remove exactly what they add.
 *
 * iptables: one chain of its own (NFSIEVE unless named), its contents
 * replaced atomically with `iptables-restore --noflush` (declaring a user
 * chain there flushes it, so a second run, or a run after the policy changed,
 * leaves exactly the new rules, in order, the default's DROP last), and one
 * jump from the hooked chain, inserted only when `iptables -C` does not find
 * it. nftables: a table of its own, declared, deleted and defined again in
 * one `nft -f` transaction.
 */
import { Interval } from '../compile/normalize';
import { NfsieveError } from '../errors';
import { CT_STATE_NAMES, policySelectors, Selector } from './select';
import { ipsetDelete, ipsetInstall, offloadable, offloadAlternatives, OffloadMatch, offloadSets } from './offload';
import { Policy, Verdict } from '../policy/model';

export interface HookOptions {
  queues: number[];
  /** Built-in chain to jump from (iptables name: INPUT, PREROUTING, FORWARD). */
  chain: string;
  /** iptables table (filter, mangle, raw); for nftables, the chain priority. */
  table: string;
  /** Own chain (iptables) or table (nftables) name. */
  name: string;
  /** Let packets through when no process is attached to the queue (--queue-bypass). */
  bypass: boolean;
  /** Spread flows over the queues by CPU rather than by flow hash (--queue-cpu-fanout). */
  cpuFanout: boolean;
  /** Let the kernel decide the rules it can decide exactly (src/hook/offload.ts). */
  offload?: boolean;
}

/** A policy and hook options that no kernel rule set can honour (code EPOLICY: the CLI exits 1 with the message). */
export class HookError extends NfsieveError {
  constructor(message: string) { super('EPOLICY', `nfsieve hook: ${message}`); this.name = 'HookError'; }
}

/** iptables -p names; others are numbers. */
const PROTO_NAME: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 50: 'esp', 51: 'ah', 58: 'ipv6-icmp', 132: 'sctp' };
/** A multiport match holds 15 ports, a range counting as two. */
const MULTIPORT_SLOTS = 15;
const ICMP_ENTRIES_MAX = 32;
const IPTABLES = { 4: { cmd: 'iptables', restore: 'iptables-restore' }, 6: { cmd: 'ip6tables', restore: 'ip6tables-restore' } } as const;

function defaultAction(def: Verdict, table: string, chain: string): 'DROP' | 'REJECT' | null {
  if (def === 'accept') return null;
  if (def === 'drop') return 'DROP';
  if (table !== 'filter' || !['INPUT', 'FORWARD', 'OUTPUT'].includes(chain)) {
    throw new HookError(`default reject needs the filter table's INPUT, FORWARD or OUTPUT chain (REJECT is valid only there), not ${table} ${chain}`);
  }
  return 'REJECT';
}

function nfqueueTarget(o: HookOptions): string {
  const { queues } = o;
  const bypass = o.bypass ? ' --queue-bypass' : '';
  if (queues.length === 1) return `NFQUEUE --queue-num ${queues[0]}${bypass}`;
  return `NFQUEUE --queue-balance ${queues[0]}:${queues[queues.length - 1]}${o.cpuFanout ? ' --queue-cpu-fanout' : ''}${bypass}`;
}

/** Port lists cut into multiport-sized pieces. */
function portChunks(ranges: Interval[]): string[][] {
  const chunks: string[][] = [];
  let cur: string[] = [];
  let slots = 0;
  for (const r of ranges) {
    const lo = Number(r.lo), hi = Number(r.hi);
    const cost = lo === hi ? 1 : 2;
    if (slots + cost > MULTIPORT_SLOTS) { chunks.push(cur); cur = []; slots = 0; }
    cur.push(lo === hi ? `${lo}` : `${lo}:${hi}`);
    slots += cost;
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

/** ICMP keys as type or type/code entries; null when there are too many to list. */
function icmpEntries(keys: Interval[]): { type: number; code?: number }[] | null {
  const out: { type: number; code?: number }[] = [];
  for (const iv of keys) {
    let k = Number(iv.lo);
    const hi = Number(iv.hi);
    while (k <= hi) {
      const type = k >> 8;
      const typeEnd = type * 256 + 255;
      if (k % 256 === 0 && hi >= typeEnd) { out.push({ type }); k = typeEnd + 1; }
      else { out.push({ type, code: k & 255 }); k++; }
      if (out.length > ICMP_ENTRIES_MAX) return null;
    }
  }
  return out;
}

/** iptables match text for a selector: one line per multiport chunk or ICMP entry. */
function iptablesMatches(s: Selector, family: 4 | 6): string[] {
  const ctx = `${s.iface ? `-i ${s.iface} ` : ''}${s.ctstate ? `-m conntrack --ctstate ${s.ctstate.map((k) => CT_STATE_NAMES[k].toUpperCase()).join(',')} ` : ''}`;
  if (s.proto === null) return [ctx.trim()];
  const p = `-p ${PROTO_NAME[s.proto] ?? s.proto}`;
  if (s.ports) {
    const flag = s.ports.dir;
    return portChunks(s.ports.ranges).map((c) => (c.length === 1 ? `${ctx}${p} --${flag} ${c[0]}` : `${ctx}${p} -m multiport --${flag}s ${c.join(',')}`));
  }
  if (s.icmp) {
    const entries = icmpEntries(s.icmp);
    const m = family === 4 ? '-m icmp --icmp-type' : '-m icmp6 --icmpv6-type';
    if (entries) return entries.map((e) => `${ctx}${p} ${m} ${e.code === undefined ? e.type : `${e.type}/${e.code}`}`);
  }
  return [`${ctx}${p}`];
}

const portMatch = (dir: 'sport' | 'dport', ranges: Interval[]): string[] =>
  portChunks(ranges).map((c) => (c.length === 1 ? `--${dir} ${c[0]}` : `-m multiport --${dir}s ${c.join(',')}`));

const PORT_PROTO_NAME: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

function iptablesOffload(m: OffloadMatch): string[] {
  const addr = (a: OffloadMatch['src'], dir: 'src' | 'dst'): string =>
    (a === null ? '' : 'set' in a ? `-m set --match-set ${a.set} ${dir} ` : `${dir === 'src' ? '-s' : '-d'} ${a.prefix} `);
  const p = `${addr(m.src, 'src')}${addr(m.dst, 'dst')}-p ${PROTO_NAME[m.proto] ?? m.proto}`;
  return m.ports ? portMatch(m.ports.dir, m.ports.ranges).map((x) => `${p} ${x}`) : [p];
}

/** With --offload: the rules the kernel decides itself, in policy order, before any queue rule. */
function offloadLines(policy: Policy, family: 4 | 6, o: HookOptions): string[] {
  if (!o.offload) return [];
  return offloadable(policy).rules.flatMap((i) => {
    const verdict = policy.rules[i].action.type === 'accept' ? 'ACCEPT' : 'DROP';
    return offloadAlternatives(policy.rules[i], family).flatMap(iptablesOffload).map((m) => `-A ${o.name} ${m} -j ${verdict}`);
  });
}

/** The chain's rules (iptables-restore lines) for one family. */
export function iptablesRules(policy: Policy, family: 4 | 6, o: HookOptions): string[] {
  const target = nfqueueTarget(o);
  const lines = offloadLines(policy, family, o);
  lines.push(...policySelectors(policy, family).flatMap((s) => iptablesMatches(s, family)).map((m) => `-A ${o.name} ${m ? `${m} ` : ''}-j ${target}`));
  const def = defaultAction(policy.default, o.table, o.chain);
  if (def) lines.push(`-A ${o.name} -j ${def}`);
  return lines;
}

/** Shell commands installing the hook for both families; running them again changes nothing. */
export function iptablesInstall(policy: Policy, o: HookOptions): string[] {
  const out: string[] = [];
  const rules = { 4: iptablesRules(policy, 4, o), 6: iptablesRules(policy, 6, o) };
  // The ipsets the offloaded rules name, created and filled before the rules refer to them.
  if (o.offload) out.push(...ipsetInstall(offloadSets(policy, offloadable(policy).rules)));
  for (const family of [4, 6] as const) {
    const { cmd, restore } = IPTABLES[family];
    out.push(`${restore} --noflush <<'EOF'`, `*${o.table}`, `:${o.name} - [0:0]`, ...rules[family], 'COMMIT', 'EOF');
    out.push(`${cmd} -t ${o.table} -C ${o.chain} -j ${o.name} 2>/dev/null || ${cmd} -t ${o.table} -I ${o.chain} -j ${o.name}`);
  }
  return out;
}

/** Shell commands removing exactly what iptablesInstall adds (no error when it is not there). */
export function iptablesDelete(o: HookOptions): string[] {
  return [
    // The ipsets --offload created are the ones the chain names: read them before the chain goes.
    `nfsieve_sets=$( { iptables -t ${o.table} -S ${o.name}; ip6tables -t ${o.table} -S ${o.name}; } 2>/dev/null | sed -n 's/.*--match-set \\([^ ]*\\) .*/\\1/p' | sort -u)`,
    ...([4, 6] as const).flatMap((family) => {
      const { cmd } = IPTABLES[family];
      return [
        `while ${cmd} -t ${o.table} -D ${o.chain} -j ${o.name} 2>/dev/null; do :; done`,
        `if ${cmd} -t ${o.table} -S ${o.name} >/dev/null 2>&1; then ${cmd} -t ${o.table} -F ${o.name} && ${cmd} -t ${o.table} -X ${o.name}; fi`,
      ];
    }),
    ...ipsetDelete(),
  ];
}

// ---- nftables ----

const NFT_PROTO: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 50: 'esp', 51: 'ah', 58: 'ipv6-icmp', 132: 'sctp' };

function nftSet(items: string[]): string {
  return items.length === 1 ? items[0] : `{ ${items.join(', ')} }`;
}

function nftMatches(s: Selector, family: 4 | 6): string[] {
  const ctx = [
    s.iface ? `iifname "${s.iface.endsWith('+') ? `${s.iface.slice(0, -1)}*` : s.iface}"` : '',
    s.ctstate ? `ct state ${s.ctstate.map((k) => CT_STATE_NAMES[k]).join(',')}` : '',
  ].filter(Boolean).join(' ');
  const fam = `meta nfproto ${family === 4 ? 'ipv4' : 'ipv6'}`;
  const join = (...parts: string[]): string => parts.filter(Boolean).join(' ');
  if (s.proto === null) return [join(fam, ctx)];
  if (s.ports) {
    const items = s.ports.ranges.map((r) => (Number(r.lo) === Number(r.hi) ? `${r.lo}` : `${r.lo}-${r.hi}`));
    return [join(fam, ctx, `${NFT_PROTO[s.proto]} ${s.ports.dir} ${nftSet(items)}`)];
  }
  if (s.icmp) {
    const entries = icmpEntries(s.icmp);
    const kw = family === 4 ? 'icmp' : 'icmpv6';
    if (entries) {
      const types = entries.filter((e) => e.code === undefined).map((e) => `${e.type}`);
      const coded = entries.filter((e) => e.code !== undefined);
      return [
        ...(types.length > 0 ? [join(fam, ctx, `${kw} type ${nftSet(types)}`)] : []),
        ...coded.map((e) => join(fam, ctx, `${kw} type ${e.type} ${kw} code ${e.code}`)),
      ];
    }
  }
  return [join(fam, ctx, `meta l4proto ${NFT_PROTO[s.proto] ?? s.proto}`)];
}

function nftQueue(o: HookOptions): string {
  const { queues } = o;
  const flags = [...(queues.length > 1 && o.cpuFanout ? ['fanout'] : []), ...(o.bypass ? ['bypass'] : [])];
  const num = queues.length === 1 ? `${queues[0]}` : `${queues[0]}-${queues[queues.length - 1]}`;
  return `queue ${flags.length ? `flags ${flags.join(',')} ` : ''}num ${num}`;
}

const NFT_HOOK: Record<string, string> = { INPUT: 'input', PREROUTING: 'prerouting', FORWARD: 'forward', OUTPUT: 'output', POSTROUTING: 'postrouting' };

/** An nftables ruleset (for `nft -f`): the table replaced as a whole, atomically. */
export function nftRuleset(policy: Policy, o: HookOptions): string[] {
  const hook = NFT_HOOK[o.chain];
  if (!hook) throw new HookError(`--hook-chain ${o.chain}: expected one of ${Object.keys(NFT_HOOK).join(', ')}`);
  const def = defaultAction(policy.default, o.table === 'filter' ? 'filter' : o.table, o.chain);
  const q = nftQueue(o);
  const rules: string[] = o.offload ? nftOffload(policy) : [];
  for (const family of [4, 6] as const) {
    for (const s of policySelectors(policy, family)) for (const m of nftMatches(s, family)) rules.push(`${m} ${q}`);
  }
  if (def) rules.push(def === 'DROP' ? 'drop' : 'reject');
  return [
    `table inet ${o.name}`,
    `delete table inet ${o.name}`,
    `table inet ${o.name} {`,
    ...(o.offload ? nftSets(policy) : []),
    `  chain ${hook} {`,
    `    type filter hook ${hook} priority ${o.table}; policy accept;`,
    ...rules.map((r) => `    ${r}`),
    '  }',
    '}',
  ];
}

/** With --offload: the table's named sets (nftables counterparts of the ipsets, same names). */
function nftSets(policy: Policy): string[] {
  return offloadSets(policy, offloadable(policy).rules).flatMap((s) => [
    `  set ${s.name} {`,
    `    type ${s.family === 4 ? 'ipv4_addr' : 'ipv6_addr'}`,
    '    flags interval',
    ...(s.members.length > 0 ? [`    elements = { ${s.members.join(', ')} }`] : []),
    '  }',
  ]);
}

function nftOffloadMatch(m: OffloadMatch, family: 4 | 6): string {
  const ip = family === 4 ? 'ip' : 'ip6';
  const addr = (a: OffloadMatch['src'], dir: 'saddr' | 'daddr'): string => (a === null ? '' : `${ip} ${dir} ${'set' in a ? `@${a.set}` : a.prefix} `);
  const ports = m.ports
    ? `${PORT_PROTO_NAME[m.proto]} ${m.ports.dir} ${nftSet(m.ports.ranges.map((r) => (Number(r.lo) === Number(r.hi) ? `${r.lo}` : `${r.lo}-${r.hi}`)))}`
    : `meta l4proto ${NFT_PROTO[m.proto] ?? m.proto}`;
  return `meta nfproto ${family === 4 ? 'ipv4' : 'ipv6'} ${addr(m.src, 'saddr')}${addr(m.dst, 'daddr')}${ports}`;
}

/** With --offload: the offloaded rules, in policy order, each family's alternatives. */
function nftOffload(policy: Policy): string[] {
  return offloadable(policy).rules.flatMap((i) => {
    const verdict = policy.rules[i].action.type === 'accept' ? 'accept' : 'drop';
    return ([4, 6] as const).flatMap((f) => offloadAlternatives(policy.rules[i], f).map((m) => `${nftOffloadMatch(m, f)} ${verdict}`));
  });
}

/** nftables lines removing the table (declaring it first makes this succeed when it is absent). */
export function nftDelete(o: HookOptions): string[] {
  return [`table inet ${o.name}`, `delete table inet ${o.name}`];
}

