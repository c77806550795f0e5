/**
 * `iptables-save` / `ip6tables-save` to a policy: one table, one built-in
 * chain, with jumps, gotos and RETURN flattened into a single first-match
 * list whose verdict is the kernel's for every packet.
 *
 * Flattening. A jump `C -> X` inlines X's rules, each with C's conditions as
 * extra conjuncts. RETURN inside X becomes a `skip` to the rule after X's
 * block (C's conditions included, so only packets that entered X skip). A goto
 * `C -g X` inlines X the same way and adds, after the block, a skip that leaves
 * the calling chain too (falling off X returns to the caller's caller). RETURN
 * or falling off the built-in chain reaches its policy: the default verdict.
 *
 * Hotdrop. The kernel's tcp/udp/icmp/icmp6/esp/ah matches drop a packet
 * outright when its header is truncated (and tcp drops a fragment at offset 1).
 * Before each rule with such a match comes a drop rule carrying the same
 * header checks and earlier matches plus the truncated-header condition.
 */
import { Conditions, NamedSet, Policy, Rule, Verdict } from '../policy/model';
import { parsePrefix, ValueError } from '../policy/values';
import { PolicyError, readInputFile } from '../policy/parse';
import { HeaderKind, ImportError, ParsedRule, parseRuleLine, RuleContext, tokenize } from './rule';

export interface ImportOptions {
  table?: string;
  chain?: string;
  /** `ipset save` output with the sets that -m set names. */
  ipsetFile?: string;
  /** Force the family (default: detected from the file). */
  family?: 4 | 6;
}

const BUILTIN = new Set(['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING']);
const MAX_DEPTH = 64;

export function importIptablesFile(file: string, options: ImportOptions = {}): Policy {
  const text = readInputFile(file);
  const sets = options.ipsetFile ? loadIpset(options.ipsetFile) : new Map<string, NamedSet>();
  return importIptables(text, file, options, sets);
}

export function detectFamily(text: string): 4 | 6 {
  if (/^#.*ip6tables-save/m.test(text)) return 6;
  if (/^#.*iptables-save/m.test(text)) return 4;
  if (/(^|\s)-[sd]\s+!?\s*[0-9a-fA-F]*:/m.test(text) || /-m icmp6|-p (ipv6-icmp|icmpv6)/.test(text)) return 6;
  return 4;
}

export function importIptables(text: string, file: string, options: ImportOptions = {}, ipsets = new Map<string, NamedSet>()): Policy {
  const table = options.table ?? 'filter';
  const chainName = options.chain ?? 'INPUT';
  const family = options.family ?? detectFamily(text);
  const fail = (line: number, message: string): never => {
    throw new PolicyError([{ file, line, column: 0, message }]);
  };
  // Collect the chosen table's chains and rule lines.
  const lines = text.split('\n');
  let inTable = false;
  let found = false;
  const policies = new Map<string, { verdict: string; line: number }>();
  const ruleLines: { words: string[]; line: number }[] = [];
  lines.forEach((raw, idx) => {
    const line = raw.trim();
    const n = idx + 1;
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('*')) {
      if (inTable) fail(n, `table ${line} starts before COMMIT of *${table}`);
      inTable = line.slice(1) === table;
      found ||= inTable;
      return;
    }
    if (line === 'COMMIT') { inTable = false; return; }
    if (!inTable) return;
    if (line.startsWith(':')) {
      const m = /^:(\S+)\s+(\S+)/.exec(line);
      if (!m) fail(n, 'bad chain line (expected :CHAIN POLICY [packets:bytes])');
      policies.set(m![1], { verdict: m![2], line: n });
      return;
    }
    try {
      ruleLines.push({ words: tokenize(line, n), line: n });
    } catch (e) {
      if (e instanceof ImportError) fail(e.line, e.message);
      throw e;
    }
  });
  if (!found) fail(0, `no table '*${table}' in the file`);
  const base = policies.get(chainName);
  if (!base) fail(0, `no chain '${chainName}' in table ${table}`);
  if (!BUILTIN.has(chainName) || base!.verdict === '-') fail(base!.line, `'${chainName}' is a user chain: --chain must name a built-in chain, whose policy is the default verdict`);
  const verdict = base!.verdict.toLowerCase();
  if (verdict !== 'accept' && verdict !== 'drop') fail(base!.line, `unsupported chain policy ${base!.verdict}`);

  const ctx: RuleContext = {
    family,
    ipsets: new Map([...ipsets.keys()].map((k) => [k, 'address' as const])),
    userChains: new Set([...policies].filter(([, p]) => p.verdict === '-').map(([k]) => k)),
  };
  const chains = new Map<string, ParsedRule[]>();
  for (const name of policies.keys()) chains.set(name, []);
  for (const { words, line } of ruleLines) {
    try {
      const rule = parseRuleLine(words, line, ctx);
      const list = chains.get(rule.chain);
      if (!list) fail(line, `-A ${rule.chain}: chain not declared in table ${table}`);
      list!.push(rule);
    } catch (e) {
      if (e instanceof ImportError) fail(e.line, e.message);
      throw e;
    }
  }

  const out: Rule[] = [];
  const emit = (r: ParsedRule, conjuncts: Conditions[], action: Rule['action'], name: string | null = r.comment): number => {
    out.push({ name, line: r.line, column: 1, conditions: { family, ...(conjuncts[0] ?? {}) }, extra: conjuncts.slice(1), action });
    return out.length - 1;
  };
  const patch = (indices: number[], to: number): void => {
    for (const i of indices) out[i].action = { type: 'skip', to };
  };

  function flatten(chain: string, inherited: Conditions[], stack: string[]): number[] {
    const returns: number[] = [];
    for (const r of chains.get(chain)!) {
      for (const alt of alternatives(r)) {
        const conjuncts = [...inherited, r.header, ...alt];
        // ip6tables' -p: when ipv6_find_hdr() fails, the packet is dropped on the spot.
        if (r.header.nfProto) {
          const beforeProto: Conditions = { ...r.header };
          delete beforeProto.nfProto;
          emit(r, [...inherited, beforeProto, { truncated: 'ipv6-hdr' }], { type: 'drop' });
        }
        // Hotdrop siblings, in match order.
        r.matches.forEach((m, k) => {
          if (!m.hotdrop) return;
          const before = [...inherited, r.header, ...alt.slice(0, k)];
          emit(r, [...before, hotdropCondition(m.hotdrop, family)], { type: 'drop' });
          if (m.hotdrop === 'tcp' && family === 4) emit(r, [...before, { truncated: 'tcp-frag1' }], { type: 'drop' });
        });
        const t = r.target;
        switch (t.kind) {
          case 'accept': case 'drop': case 'reject': emit(r, conjuncts, { type: t.kind }); break;
          case 'count': emit(r, conjuncts, { type: 'count' }); break;
          case 'queue': emit(r, conjuncts, { type: 'queue', queue: t.queue }); break;
          case 'mark': emit(r, conjuncts, { type: 'mark', value: t.value, mask: t.mask, then: 'continue' }); break;
          case 'return': returns.push(emit(r, conjuncts, { type: 'skip', to: 0 })); break;
          case 'jump':
          case 'goto': {
            if (stack.includes(t.chain)) fail(r.line, `chain loop: ${[...stack, t.chain].join(' -> ')}`);
            if (stack.length >= MAX_DEPTH) fail(r.line, `chains nested deeper than ${MAX_DEPTH}`);
            const inner = flatten(t.chain, conjuncts, [...stack, t.chain]);
            if (t.kind === 'jump') patch(inner, out.length);
            else {
              returns.push(...inner);
              returns.push(emit(r, conjuncts, { type: 'skip', to: 0 }));
            }
            break;
          }
        }
      }
    }
    return returns;
  }
  const toPolicy = flatten(chainName, [], [chainName]);
  patch(toPolicy, out.length);
  // A skip to the very end must still point past its own rule.
  return { source: file, default: verdict as Verdict, rules: out, sets: ipsets };
}

/** Bytes each match reads at the transport header (xt_tcpudp, xt_multiport, xt_esp, xt_ah, icmp/icmp6). */
const HEADER_BYTES: Record<HeaderKind, number> = { tcp: 20, udp: 8, icmp: 8, icmpv6: 8, esp: 8, ah: 12, ports: 4 };

/** The condition under which a match drops the packet for want of its header. */
function hotdropCondition(kind: HeaderKind, family: 4 | 6): Conditions {
  // ip6t_ah finds AH by its own walk, not at the transport offset.
  if (kind === 'ah' && family === 6) return { truncated: 'ah' };
  return { l4Avail: { negate: false, values: [{ lo: 0, hi: HEADER_BYTES[kind] - 1 }] } };
}

/**
 * The conjunct lists of a rule's matches. `-m multiport --ports` (source or
 * destination port) is the one disjunction: it becomes two exclusive
 * alternatives, sport in P; and sport not in P with dport in P.
 */
function alternatives(r: ParsedRule): Conditions[][] {
  let alts: Conditions[][] = [[]];
  for (const m of r.matches) {
    const c = m.conditions as Conditions & { ports?: { negate: boolean; values: { lo: number; hi: number }[] } };
    if (!c.ports) {
      alts = alts.map((a) => [...a, m.conditions]);
      continue;
    }
    const { ports, ...rest } = c;
    if (ports.negate) {
      alts = alts.map((a) => [...a, { ...rest, sport: ports, dport: ports }]);
    } else {
      const first = { ...rest, sport: { negate: false, values: ports.values } };
      const second = { ...rest, sport: { negate: true, values: ports.values }, dport: { negate: false, values: ports.values } };
      alts = alts.flatMap((a) => [[...a, first], [...a, second]]);
    }
  }
  return alts;
}

/** `ipset save` output: hash:ip and hash:net sets (IPv4 or IPv6) become address sets. */
export function loadIpset(file: string): Map<string, NamedSet> {
  const text = readInputFile(file);
  const sets = new Map<string, NamedSet>();
  const errors: { file: string; line: number; column: number; message: string }[] = [];
  text.split('\n').forEach((raw, i) => {
    const words = raw.trim().split(/\s+/);
    if (words[0] === '' || words[0].startsWith('#')) return;
    const where = { file, line: i + 1, column: 0 };
    if (words[0] === 'create') {
      const [, name, type] = words;
      if (!['hash:ip', 'hash:net', 'bitmap:ip'].includes(type)) { errors.push({ ...where, message: `unsupported ipset type ${type} for set ${name} (hash:ip, hash:net, bitmap:ip)` }); return; }
      sets.set(name, { name, kind: 'address', addresses: [], spis: [] });
    } else if (words[0] === 'add') {
      const [, name, element, ...opts] = words;
      const set = sets.get(name);
      if (!set) { errors.push({ ...where, message: `add to set ${name} before its create line` }); return; }
      if (opts.includes('nomatch')) { errors.push({ ...where, message: 'nomatch elements are unsupported' }); return; }
      try {
        set.addresses.push(parsePrefix(element));
      } catch (e) {
        if (e instanceof ValueError) errors.push({ ...where, message: e.message });
        else throw e;
      }
    } else {
      errors.push({ ...where, message: `unsupported ipset command '${words[0]}'` });
    }
  });
  if (errors.length) throw new PolicyError(errors);
  return sets;
}
