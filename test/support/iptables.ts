/**
 * iptables for tests: a random iptables-save generator covering every match
 * and target the importer supports, and a chain interpreter (jumps, gotos
 * and RETURN run on a call stack, matches evaluated in order with the
 * kernel's hotdrop) that checks the flattening. It reuses the importer's
 * rule parser and the reference evaluator's conditions, so it is not an
 * independent oracle of match semantics: ./kernel-oracle.ts is.
 */
import { DecodedPacket } from '../../src/decode/packet';
import { Conditions } from '../../src/policy/model';
import { ParsedRule, parseRuleLine, RuleContext, tokenize } from '../../src/iptables/rule';
import { failingCondition, Meta, SetContents, truncatedKey, l4Avail } from '../../src/reference/evaluate';
import { TRUNCATED_KEYS, TRUNCATED_MATCH } from '../../src/compile/fields';
import { Rng } from './packets';

const neg = (rng: Rng): string => (rng.chance(0.2) ? '! ' : '');

/** Address material of generated rules; the kernel test swaps in its lab's own pools. */
export interface AddressPools {
  prefix(rng: Rng, family: 4 | 6): string;
  range(rng: Rng, family: 4 | 6): string;
}

export const DEFAULT_POOLS: AddressPools = {
  prefix(rng, family) {
    if (family === 4) return rng.pick([`10.${rng.int(4)}.${rng.int(4)}.${1 + rng.int(8)}/32`, `10.${rng.int(4)}.0.0/16`, '10.0.0.0/8', `10.${rng.int(4)}.${rng.int(4)}.0/24`]);
    return rng.pick([`fd00::${1 + rng.int(8)}/128`, 'fd00::/16', `fd00::/${120 + rng.int(8)}`]);
  },
  range(rng, family) {
    return family === 4 ? `10.0.0.1-10.${rng.int(4)}.3.8` : `fd00::1-fd00::${1 + rng.int(8)}`;
  },
};

let pools: AddressPools = DEFAULT_POOLS;
const addr = (rng: Rng, family: 4 | 6): string => pools.prefix(rng, family);

/** One random match block and its required -p, as iptables-save would print it. */
function randomMatch(rng: Rng, family: 4 | 6, proto: string | null, kind = rng.int(11)): string {
  const port = (): string => rng.pick(['500', '4500', '53', '1701', `${rng.int(1000)}:${1000 + rng.int(60000)}`, String(rng.int(65536))]);
  switch (kind) {
    case 0: return proto === 'tcp' || proto === 'udp' ? portMatch(rng, proto, port) : '';
    case 1: return proto === 'tcp' || proto === 'udp' ? `-m multiport ${neg(rng)}--${rng.pick(['dports', 'sports', 'ports'])} ${Array.from({ length: 1 + rng.int(3) }, port).join(',')}` : '';
    case 2: return proto === 'esp' ? `-m esp ${neg(rng)}--espspi ${rng.pick(['256', `${rng.int(1000)}:${rng.u32()}`, '0:4294967295'])}` : '';
    case 3: return proto === 'ah' || family === 6 ? `-m ah ${neg(rng)}--ahspi ${rng.pick(['256', `100:${rng.u32()}`])}` : '';
    case 4: return proto === (family === 4 ? 'icmp' : 'ipv6-icmp') ? (family === 4 ? `-m icmp ${neg(rng)}--icmp-type ${rng.pick(['8', '0', '3/4', '11', 'echo-request', '5'])}` : `-m icmp6 ${neg(rng)}--icmpv6-type ${rng.pick(['128', '129', '2', '135'])}`) : '';
    case 5: return `-m iprange ${neg(rng)}--${rng.pick(['src', 'dst'])}-range ${pools.range(rng, family)}`;
    case 6: return `-m set ${neg(rng)}--match-set ${family === 4 ? 'gw4' : 'gw6'} ${rng.pick(['src', 'dst'])}`;
    case 7: return `-m ${rng.pick(['state --state', 'conntrack --ctstate'])} ${rng.pick(['NEW', 'ESTABLISHED,RELATED', 'INVALID', 'NEW,UNTRACKED'])}`.replace('--state', `${neg(rng)}--state`).replace('--ctstate', `${neg(rng)}--ctstate`);
    case 8: return `-m mark ${neg(rng)}--mark 0x${rng.int(8).toString(16)}${rng.chance(0.5) ? '/0xff' : ''}`;
    case 9: return `-m length ${neg(rng)}--length ${rng.int(80)}:${80 + rng.int(400)}`;
    default: return `-m comment --comment "rule ${rng.int(100)}"`;
  }
}

/**
 * -m tcp / -m udp in every shape iptables-nft translates differently: no
 * ports, either port alone, both, full ranges (left out, or the xt match when
 * nothing else is asked), port 0, and pairs of single ports negated alike
 * (one 4-byte compare).
 */
function portMatch(rng: Rng, proto: string, port: () => string): string {
  const pick = (): string => (rng.chance(0.15) ? rng.pick(['0:65535', '0', '1:65535', '0:65534']) : port());
  const single = (): string => rng.pick(['500', '4500', '53', String(1 + rng.int(65535))]);
  switch (rng.int(6)) {
    case 0: return `-m ${proto}`;
    case 1: return `-m ${proto} ${neg(rng)}--sport ${pick()}`;
    case 2: { const n = rng.chance(0.5) ? '! ' : ''; return `-m ${proto} ${n}--sport ${single()} ${n}--dport ${single()}`; }
    case 3: return `-m ${proto} ${neg(rng)}--sport ${pick()} ${neg(rng)}--dport ${pick()}`;
    default: return `-m ${proto} ${neg(rng)}--dport ${pick()}` + (rng.chance(0.3) ? ` ${neg(rng)}--sport ${pick()}` : '');
  }
}

/**
 * Whether an imported rule is a hotdrop sibling (the drop the importer puts
 * before a rule whose match cannot read its header): its conditions name a
 * truncated kind or too few transport bytes (l4-avail from 0), where a
 * match itself asks for its whole header (l4-avail from 4 or more).
 */
export function isHotdrop(rule: { extra?: Conditions[] }): boolean {
  return (rule.extra ?? []).some((x) => x.truncated !== undefined || (x.l4Avail?.values.some((v) => v.lo === 0) ?? false));
}

/** A MARK target's value/mask as iptables-save prints every form: set (in a mask or whole), xor, or, and. */
function randomXmark(rng: Rng): string {
  const v = rng.int(8);
  return rng.pick([`0x${v.toString(16)}/0xff`, `0x${v.toString(16)}/0xffffffff`, `0x${v.toString(16)}/0x0`, '0x100/0x100', '0x0/0x6']);
}

/** A random iptables-save text for one family: INPUT plus a few user chains. */
export function randomIptablesSave(rng: Rng, family: 4 | 6, addressPools: AddressPools = DEFAULT_POOLS, backend: 'legacy' | 'nft' = 'legacy'): string {
  pools = addressPools;
  const chains = ['INPUT', ...Array.from({ length: rng.int(4) }, (_, i) => `U${i}`)];
  const tool = `${family === 4 ? 'iptables' : 'ip6tables'}${backend === 'nft' ? '-nft' : ''}-save v1.8.9 (${backend === 'nft' ? 'nf_tables' : 'legacy'})`;
  const lines = [`# Generated by ${tool} on Mon Nov 30 03:00:00 2026`, '*filter', `:INPUT ${rng.pick(['ACCEPT', 'DROP'])} [0:0]`, ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (const c of chains.slice(1)) lines.push(`:${c} - [0:0]`);
  chains.forEach((chain, ci) => {
    const n = 1 + rng.int(ci === 0 ? 12 : 5);
    for (let i = 0; i < n; i++) {
      const parts = [`-A ${chain}`];
      if (rng.chance(0.3)) parts.push(`${neg(rng)}-s ${addr(rng, family)}`);
      if (rng.chance(0.2)) parts.push(`${neg(rng)}-d ${addr(rng, family)}`);
      if (rng.chance(0.15)) parts.push(`${neg(rng)}-i ${rng.pick(['eth0', 'ipsec+', 'ppp0'])}`);
      let proto: string | null = null;
      if (rng.chance(0.7)) {
        proto = rng.pick(['tcp', 'udp', 'udp', 'esp', 'ah', family === 4 ? 'icmp' : 'ipv6-icmp']);
        const negated = rng.chance(0.1);
        parts.push(`${negated ? '! ' : ''}-p ${proto}`);
        if (negated) proto = null;
      }
      if (family === 4 && rng.chance(0.1)) parts.push(`${neg(rng)}-f`);
      const matches = rng.int(3);
      for (let k = 0; k < matches; k++) {
        const m = randomMatch(rng, family, proto);
        if (m && !parts.some((p) => p.startsWith(m.split(' --')[0].replace(/ !$/, '')))) parts.push(m);
      }
      const later = chains.slice(ci + 1);
      const t = rng.int(12);
      if (t < 3) parts.push('-j ACCEPT');
      else if (t < 5) parts.push('-j DROP');
      else if (t === 5) parts.push('-j REJECT --reject-with icmp-port-unreachable'.replace('icmp-port', family === 4 ? 'icmp-port' : 'icmp6-port'));
      else if (t === 6 && ci > 0) parts.push('-j RETURN');
      else if (t === 7) parts.push(`-j MARK --set-xmark ${randomXmark(rng)}`);
      else if (t === 8) parts.push('-j LOG --log-prefix "seen "');
      else if (t === 9) parts.push(`-j NFQUEUE --queue-num ${rng.int(4)}`);
      else if (t >= 10 && later.length) {
        // Jumps on a mark into chains that may change it (entered once, not by repeated conditions).
        if (rng.chance(0.3) && !parts.some((p) => p.startsWith('-m mark'))) parts.push(randomMatch(rng, family, proto, 8));
        parts.push(`-${rng.chance(0.3) ? 'g' : 'j'} ${rng.pick(later)}`);
      }
      lines.push(parts.join(' '));
    }
  });
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

export const IPSET_SAVE = ['create gw4 hash:net family inet', 'add gw4 10.0.0.1', 'add gw4 10.1.0.0/16', 'create gw6 hash:ip family inet6', 'add gw6 fd00::2', ''].join('\n');

interface Chains { rules: Map<string, ParsedRule[]>; policy: 'accept' | 'drop' }

/** Parse with the importer's rule parser, without flattening. */
export function parseChains(text: string, family: 4 | 6, backend: 'legacy' | 'nft' = 'legacy'): Chains {
  const userChains = new Set<string>();
  let policy: 'accept' | 'drop' = 'accept';
  for (const m of text.matchAll(/^:(\S+) (\S+)/gm)) {
    if (m[2] === '-') userChains.add(m[1]);
    if (m[1] === 'INPUT') policy = m[2].toLowerCase() as 'accept' | 'drop';
  }
  const ctx: RuleContext = { family, backend, ipsets: new Map([['gw4', 'address'], ['gw6', 'address']]), userChains };
  const rules = new Map<string, ParsedRule[]>([['INPUT', []], ...[...userChains].map((c) => [c, []] as [string, ParsedRule[]])]);
  text.split('\n').forEach((line, i) => {
    if (!line.startsWith('-A')) return;
    const r = parseRuleLine(tokenize(line, i + 1), i + 1, ctx);
    rules.get(r.chain)!.push(r);
  });
  return { rules, policy };
}

export interface ChainVerdict { verdict: 'accept' | 'drop' | 'reject' | 'queue'; line: number | null; mark: number | null }

/** Run the chains as the kernel does: a call stack, matches in order, hotdrop. */
export function runChains(ch: Chains, p: DecodedPacket, meta: Meta, sets: SetContents): ChainVerdict {
  let mark = meta.mark ?? 0;
  let markSet = false;
  const hold = (c: Conditions): boolean => failingCondition(c, p, meta, sets, mark) === null;
  const matchHolds = (c: Conditions & { ports?: { negate: boolean; values: { lo: number; hi: number }[] } }): boolean => {
    const { ports, ...rest } = c;
    if (!hold(rest)) return false;
    if (!ports) return true;
    if (p.sport === null || p.dport === null) return false;
    const inP = (v: number): boolean => ports.values.some((r) => v >= r.lo && v <= r.hi);
    const either = inP(p.sport) || inP(p.dport);
    return ports.negate ? !inP(p.sport) && !inP(p.dport) : either;
  };
  type R = ChainVerdict | 'return';
  const run = (chain: string): R => {
    for (const r of ch.rules.get(chain)!) {
      if (r.header.nfProto && TRUNCATED_MATCH['ipv6-hdr'].includes(truncatedKey(p))) {
        // ip6_packet_match: ipv6_find_hdr() failed after addresses and interfaces matched.
        const rest: Conditions = { ...r.header };
        delete rest.nfProto;
        if (hold(rest)) return { verdict: 'drop', line: r.line, mark: markSet ? mark : null };
        continue;
      }
      if (!hold(r.header)) continue;
      let ok = true;
      for (const m of r.matches) {
        if (m.hotdrop) {
          // The kernel reads the match's header first and drops the packet when it is not all there.
          const need = { tcp: 20, udp: 8, icmp: 8, icmpv6: 8, esp: 8, ah: 12, ports: 4 }[m.hotdrop];
          const avail = l4Avail(p);
          const short = m.hotdrop === 'ah' && p.family === 6 ? TRUNCATED_MATCH.ah.includes(truncatedKey(p)) : avail !== null && avail < need;
          const frag1 = m.hotdrop === 'tcp' && truncatedKey(p) === TRUNCATED_KEYS['tcp-frag1'];
          if (short || frag1) return { verdict: 'drop', line: r.line, mark: markSet ? mark : null };
        }
        if (!matchHolds(m.conditions) || (m.either && !m.either.some(hold))) { ok = false; break; }
      }
      if (!ok) continue;
      const t = r.target;
      switch (t.kind) {
        case 'accept': case 'drop': case 'reject': return { verdict: t.kind, line: r.line, mark: markSet ? mark : null };
        case 'queue': return { verdict: 'queue', line: r.line, mark: markSet ? mark : null };
        case 'count': break;
        case 'mark': mark = ((mark & ~t.mask) ^ t.value) >>> 0; markSet = true; break;
        case 'return': return 'return';
        case 'jump': { const x = run(t.chain); if (x !== 'return') return x; break; }
        case 'goto': { const x = run(t.chain); return x; }
      }
    }
    return 'return';
  };
  const r = run('INPUT');
  return r === 'return' ? { verdict: ch.policy, line: null, mark: markSet ? mark : null } : r;
}
