/**
 * One iptables-save rule line (`-A CHAIN ...`) to conditions and a target.
 * Matches are kept in their written order, because the kernel evaluates them
 * in that order and stops at the first that fails or drops the packet
 * ("hotdrop": a tcp/udp/icmp/esp/ah match on a truncated header).
 */
import { Conditions, CtState, Range } from '../policy/model';

/** What a match reads at the transport header before anything else (it drops the packet when that is not there). */
export type HeaderKind = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'esp' | 'ah' | 'ports';
import {
  ValueError, parseAddressItem, parseIcmp, parseInterface, parseMark, parseProtocol, parseRange, parseUint,
} from '../policy/values';

export class ImportError extends Error {
  constructor(readonly line: number, message: string) {
    super(message);
  }
}

/** A match, option or target the importer does not model (`--skip-unsupported` leaves the rule out). */
export class UnsupportedError extends ImportError {}

export type Target =
  | { kind: 'accept' | 'drop' | 'reject' | 'return' | 'count' }
  | { kind: 'queue'; queue: number }
  | { kind: 'mark'; value: number; mask: number }
  | { kind: 'jump' | 'goto'; chain: string };

/** A match block as the kernel sees it: IP-header checks first, then each -m in order. */
export interface ParsedRule {
  chain: string;
  line: number;
  comment: string | null;
  /** ip_packet_match: addresses, interfaces, protocol, fragments. */
  header: Conditions;
  /** Each match module's conditions, in order, with the header kind it may hotdrop on. */
  matches: { module: string; conditions: Conditions; hotdrop: HeaderKind | null }[];
  target: Target;
}

/** Split a line into words, honouring "double quotes" and backslash escapes as iptables-save writes them. */
export function tokenize(line: string, lineNo: number): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) { cur += line[++i]; continue; }
      if (ch === '"') { quoted = false; continue; }
      cur += ch;
      continue;
    }
    if (ch === '"') { quoted = true; inWord = true; continue; }
    if (ch === ' ' || ch === '\t') {
      if (inWord) { out.push(cur); cur = ''; inWord = false; }
      continue;
    }
    cur += ch;
    inWord = true;
  }
  if (quoted) throw new ImportError(lineNo, 'unterminated quote');
  if (inWord) out.push(cur);
  return out;
}

const CT: Record<string, CtState> = { INVALID: 'invalid', NEW: 'new', ESTABLISHED: 'established', RELATED: 'related', UNTRACKED: 'untracked' };

/** Which kernel code runs the rules: xtables (iptables-legacy) or nf_tables (iptables-nft). */
export type Backend = 'legacy' | 'nft';

export interface RuleContext {
  family: 4 | 6;
  /** Default 'legacy'. */
  backend?: Backend;
  /** Names of ipset sets known from --ipset, with their kind. */
  ipsets: Map<string, 'address'>;
  userChains: Set<string>;
}

export function parseRuleLine(words: string[], lineNo: number, ctx: RuleContext): ParsedRule {
  const fail = (msg: string): never => { throw new ImportError(lineNo, msg); };
  const unsupported = (msg: string): never => { throw new UnsupportedError(lineNo, msg); };
  let i = 0;
  if (/^\[\d+:\d+\]$/.test(words[0] ?? '')) i++; // iptables-save -c counters
  if (words[i] !== '-A' && words[i] !== '--append') fail(`expected -A CHAIN, got '${words[i] ?? ''}'`);
  const chain = words[i + 1] ?? fail('-A needs a chain name');
  i += 2;
  const rule: ParsedRule = { chain, line: lineNo, comment: null, header: {}, matches: [], target: { kind: 'count' } };
  let current: { module: string; conditions: Conditions; hotdrop: HeaderKind | null } | null = null;
  let negate = false;
  let proto: number | null = null;
  const value = (opt: string): string => {
    const v = words[++i];
    if (v === undefined) fail(`${opt} needs a value`);
    return v;
  };
  const wrap = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ValueError) fail(e.message);
      throw e;
    }
  };
  const conds = (): Conditions => (current ? current.conditions : fail('option outside of a match'));
  const ranges = (text: string, max: number, what: string): Range[] => text.split(',').map((p) => parseRange(p, max, what));
  let targetSeen = false;

  for (; i < words.length; i++) {
    const w = words[i];
    if (w === '!') { negate = true; continue; }
    const neg = negate;
    negate = false;
    switch (w) {
      case '-s': case '--source': case '-d': case '--destination': {
        const key = w === '-s' || w === '--source' ? 'src' : 'dst';
        const items = wrap(() => value(w).split(',').map((x) => parseAddressItem(x)));
        if (items.some((it) => (it.kind === 'prefix' ? it.prefix.family : it.range.family) !== ctx.family)) fail(`${w}: address of the wrong family for ${ctx.family === 4 ? 'iptables' : 'ip6tables'}`);
        rule.header[key] = { negate: neg, values: items };
        break;
      }
      case '-i': case '--in-interface': case '-o': case '--out-interface': {
        const key = w.startsWith('-i') || w === '--in-interface' ? 'in' : 'out';
        rule.header[key] = { negate: neg, values: [wrap(() => parseInterface(value(w)))] };
        break;
      }
      case '-p': case '--protocol': {
        const p = wrap(() => parseProtocol(value(w)));
        if (p === -1 || p === 0) { if (neg) fail('! -p all matches nothing'); break; } // all / 0: any protocol
        proto = neg ? null : p;
        // IPv4: the IP header's own protocol field; IPv6: past extension headers
        // (iptables-nft: meta l4proto, which stops at AH and never drops).
        if (ctx.family === 4) rule.header.ipProto = { negate: neg, values: [p] };
        else if (ctx.backend === 'nft') rule.header.nftProto = { negate: neg, values: [p] };
        else rule.header.nfProto = { negate: neg, values: [p] };
        break;
      }
      case '-f': case '--fragment':
        if (ctx.family === 6) fail('-f is not an ip6tables option (use -m frag, which is unsupported)');
        rule.header.fragment = { negate: false, values: neg ? [0, 1] : [2] };
        break;
      case '-m': case '--match': {
        const mod = value(w);
        const hotdrop: Record<string, HeaderKind> = { tcp: 'tcp', udp: 'udp', icmp: 'icmp', icmp6: 'icmpv6', esp: 'esp', ah: 'ah', multiport: 'ports' };
        if (!['tcp', 'udp', 'multiport', 'esp', 'ah', 'icmp', 'icmp6', 'iprange', 'set', 'state', 'conntrack', 'mark', 'comment', 'length'].includes(mod)) {
          unsupported(`unsupported match -m ${mod}`);
        }
        if (mod === 'icmp' && ctx.family === 6) fail('-m icmp in an ip6tables file (use -m icmp6)');
        if (mod === 'icmp6' && ctx.family === 4) fail('-m icmp6 in an iptables file (use -m icmp)');
        current = { module: mod, conditions: {}, hotdrop: hotdrop[mod] ?? null };
        // These matches never match a later fragment (the kernel checks fragoff first),
        // except ip6t_ah, which finds AH by its own walk and never looks at fragoff:
        // it matches any AH found (the SPI is there), whatever comes after it.
        if (mod === 'ah' && ctx.family === 6) current.conditions.ahSpi = { negate: false, values: [{ lo: 0, hi: 0xffffffff }] };
        else if (current.hotdrop) current.conditions.fragment = { negate: false, values: [0, 1] };
        rule.matches.push(current);
        break;
      }
      case '--sport': case '--source-port': case '--dport': case '--destination-port': {
        if (!current || !['tcp', 'udp'].includes(current.module)) fail(`${w} outside -m tcp/-m udp`);
        const key = w === '--sport' || w === '--source-port' ? 'sport' : 'dport';
        conds()[key] = { negate: neg, values: wrap(() => [parseRange(value(w), 65535, 'port')]) };
        break;
      }
      case '--sports': case '--source-ports': case '--dports': case '--destination-ports': case '--ports': {
        if (!current || current.module !== 'multiport') fail(`${w} outside -m multiport`);
        const list = wrap(() => ranges(value(w), 65535, 'port'));
        if (list.length > 15) fail('multiport takes at most 15 ports');
        const c = conds();
        if (w === '--ports') (c as Conditions & { ports?: { negate: boolean; values: Range[] } }).ports = { negate: neg, values: list };
        else c[w.startsWith('--s') ? 'sport' : 'dport'] = { negate: neg, values: list };
        break;
      }
      case '--espspi': case '--ahspi': {
        const mod = w === '--espspi' ? 'esp' : 'ah';
        if (!current || current.module !== mod) fail(`${w} outside -m ${mod}`);
        conds()[mod === 'esp' ? 'spi' : 'ahSpi'] = { negate: neg, values: wrap(() => [parseRange(value(w), 0xffffffff, 'spi')]) };
        break;
      }
      case '--icmp-type': case '--icmpv6-type': {
        const v6 = w === '--icmpv6-type';
        if (!current || current.module !== (v6 ? 'icmp6' : 'icmp')) fail(`${w} outside -m ${v6 ? 'icmp6' : 'icmp'}`);
        const text = value(w);
        if (text === 'any') { conds().icmp = { negate: neg, values: [{ v6, type: 0, code: { lo: 0, hi: 255 } }] }; conds().icmp!.values = Array.from({ length: 256 }, (_, t) => ({ v6, type: t, code: { lo: 0, hi: 255 } })); break; }
        conds().icmp = { negate: neg, values: [wrap(() => parseIcmp(text, v6))] };
        break;
      }
      case '--src-range': case '--dst-range': {
        if (!current || current.module !== 'iprange') fail(`${w} outside -m iprange`);
        const item = wrap(() => parseAddressItem(value(w)));
        conds()[w === '--src-range' ? 'src' : 'dst'] = { negate: neg, values: [item] };
        break;
      }
      case '--match-set': {
        if (!current || current.module !== 'set') fail('--match-set outside -m set');
        const name = value(w);
        const dir = value(w);
        if (!ctx.ipsets.has(name)) fail(`set '${name}' is unknown: give its contents with --ipset FILE (ipset save output)`);
        if (dir !== 'src' && dir !== 'dst') fail(`--match-set ${name} ${dir}: only single-dimension sets (src or dst) are supported`);
        conds()[dir as 'src' | 'dst'] = { negate: neg, sets: [name] };
        break;
      }
      case '--state': case '--ctstate': {
        if (!current || current.module !== (w === '--state' ? 'state' : 'conntrack')) fail(`${w} outside -m ${w === '--state' ? 'state' : 'conntrack'}`);
        const states = value(w).split(',').map((s) => CT[s.toUpperCase()] ?? fail(`unsupported conntrack state '${s}'`));
        conds().ctstate = { negate: neg, values: states };
        break;
      }
      case '--mark': {
        if (!current || current.module !== 'mark') fail('--mark outside -m mark');
        const m = wrap(() => parseMark(value(w)));
        conds().mark = { value: m.value, mask: m.mask, negate: neg };
        break;
      }
      case '--comment': {
        if (!current || current.module !== 'comment') fail('--comment outside -m comment');
        rule.comment = value(w);
        break;
      }
      case '--length': {
        if (!current || current.module !== 'length') fail('--length outside -m length');
        conds().length = { negate: neg, values: [wrap(() => parseRange(value(w), 65535, 'length'))] };
        break;
      }
      case '-j': case '--jump': case '-g': case '--goto': {
        if (targetSeen) fail('more than one target');
        targetSeen = true;
        const name = value(w);
        const rest = words.slice(i + 1);
        i = words.length;
        rule.target = parseTarget(name, rest, w === '-g' || w === '--goto', lineNo, ctx);
        break;
      }
      default:
        unsupported(`unsupported option ${w}`);
    }
    if (proto !== null && current && (current.module === 'tcp' || current.module === 'udp') && current.hotdrop && proto !== (current.module === 'tcp' ? 6 : 17)) {
      fail(`-m ${current.module} needs -p ${current.module}`);
    }
  }
  if (negate) fail("'!' at the end of the rule");
  // iptables-nft turns -m tcp/-m udp with ports (and nothing else we accept)
  // into payload expressions: no hotdrop, a short header just fails to match.
  if (ctx.backend === 'nft') {
    for (const m of rule.matches) {
      if ((m.module === 'tcp' || m.module === 'udp') && (m.conditions.sport || m.conditions.dport)) m.hotdrop = null;
    }
  }
  return rule;
}

function parseTarget(name: string, rest: string[], isGoto: boolean, lineNo: number, ctx: RuleContext): Target {
  const fail = (msg: string): never => { throw new ImportError(lineNo, msg); };
  const unsupported = (msg: string): never => { throw new UnsupportedError(lineNo, msg); };
  const opts = new Map<string, string>();
  for (let k = 0; k < rest.length; k++) {
    if (!rest[k].startsWith('--')) fail(`unexpected '${rest[k]}' after the target`);
    const next = rest[k + 1];
    if (next !== undefined && !next.startsWith('--')) { opts.set(rest[k], next); k++; } else opts.set(rest[k], '');
  }
  const allow = (...names: string[]): void => {
    for (const k of opts.keys()) if (!names.includes(k)) unsupported(`unsupported option ${k} for -j ${name}`);
  };
  if (ctx.userChains.has(name)) {
    allow();
    return { kind: isGoto ? 'goto' : 'jump', chain: name };
  }
  if (isGoto) fail(`-g ${name}: no such user chain`);
  try {
    switch (name) {
      case 'ACCEPT': allow(); return { kind: 'accept' };
      case 'DROP': allow(); return { kind: 'drop' };
      case 'REJECT': allow('--reject-with'); return { kind: 'reject' };
      case 'RETURN': allow(); return { kind: 'return' };
      case 'LOG': allow('--log-prefix', '--log-level', '--log-tcp-sequence', '--log-tcp-options', '--log-ip-options', '--log-uid', '--log-macdecode'); return { kind: 'count' };
      case 'NFLOG': allow('--nflog-group', '--nflog-prefix', '--nflog-range', '--nflog-size', '--nflog-threshold'); return { kind: 'count' };
      case 'NFQUEUE': {
        allow('--queue-num', '--queue-bypass', '--queue-balance', '--fail-open', '--queue-cpu-fanout');
        const balance = opts.get('--queue-balance');
        const num = balance ? balance.split(':')[0] : opts.get('--queue-num') ?? '0';
        return { kind: 'queue', queue: parseUint(num, 65535, 'queue') };
      }
      case 'MARK': {
        allow('--set-mark', '--set-xmark', '--and-mark', '--or-mark', '--xor-mark');
        if (opts.size !== 1) fail('MARK takes exactly one of --set-mark, --set-xmark, --and-mark, --or-mark, --xor-mark');
        const [opt, arg] = [...opts][0];
        const [v, m] = arg.split('/');
        const value = parseUint(v, 0xffffffff, 'mark');
        const mask = m === undefined ? 0xffffffff : parseUint(m, 0xffffffff, 'mark mask');
        // Everything as --set-xmark value/mask: mark = (mark & ~mask) ^ value.
        switch (opt) {
          case '--set-xmark': return { kind: 'mark', value, mask };
          case '--set-mark': return { kind: 'mark', value, mask: (mask | value) >>> 0 };
          case '--and-mark': return { kind: 'mark', value: 0, mask: ~value >>> 0 };
          case '--or-mark': return { kind: 'mark', value, mask: value };
          default: return { kind: 'mark', value, mask: 0 };
        }
      }
      default:
        return unsupported(`unsupported target ${name}`);
    }
  } catch (e) {
    if (e instanceof ValueError) fail(e.message);
    throw e;
  }
}
