/**
 * One iptables-save rule line (`-A CHAIN ...`) to conditions and a target.
 * Matches are kept in their written order, because the kernel evaluates them
 * in that order and stops at the first that fails or drops the packet
 * ("hotdrop": a tcp/udp/icmp/esp/ah match on a truncated header).
 */
import { Cond, Conditions, CtState, Range } from '../policy/model';

/** What a match reads at the transport header before anything else (it drops the packet when that is not there). */
export type HeaderKind = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'esp' | 'ah' | 'ports';

/** Bytes each match reads at the transport header (xt_tcpudp, xt_multiport, xt_esp, xt_ah, icmp/icmp6). */
export const HEADER_BYTES: Record<HeaderKind, number> = { tcp: 20, udp: 8, icmp: 8, icmpv6: 8, esp: 8, ah: 12, ports: 4 };
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
  /**
   * Each match module's conditions, in order, with the header kind it may
   * hotdrop on; `either`, when there, adds exclusive alternatives of which
   * one must hold too.
   */
  matches: { module: string; conditions: Conditions; hotdrop: HeaderKind | null; either?: Conditions[] }[];
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
  return new RuleParser(words, lineNo, ctx).parse();
}

type Match = ParsedRule['matches'][number];

/** The match modules the importer models, with the header kind each may hotdrop on (null: none). */
const MODULES: Record<string, HeaderKind | null> = {
  tcp: 'tcp', udp: 'udp', multiport: 'ports', esp: 'esp', ah: 'ah', icmp: 'icmp', icmp6: 'icmpv6',
  iprange: null, set: null, state: null, conntrack: null, mark: null, comment: null, length: null,
};

/** Each match option and the -m modules it belongs to (the one guard for all of them). */
const OPTION_MODULES: Record<string, readonly string[]> = {
  '--sport': ['tcp', 'udp'], '--source-port': ['tcp', 'udp'], '--dport': ['tcp', 'udp'], '--destination-port': ['tcp', 'udp'],
  '--sports': ['multiport'], '--source-ports': ['multiport'], '--dports': ['multiport'], '--destination-ports': ['multiport'], '--ports': ['multiport'],
  '--espspi': ['esp'], '--ahspi': ['ah'], '--icmp-type': ['icmp'], '--icmpv6-type': ['icmp6'],
  '--src-range': ['iprange'], '--dst-range': ['iprange'], '--match-set': ['set'],
  '--state': ['state'], '--ctstate': ['conntrack'], '--mark': ['mark'], '--comment': ['comment'], '--length': ['length'],
};

/** One rule line, word by word: the IP header options, then each -m block's options, then the target. */
class RuleParser {
  private i = 0;
  private current: Match | null = null;
  private proto: number | null = null;
  private targetSeen = false;
  private readonly rule: ParsedRule;

  constructor(private readonly words: string[], private readonly lineNo: number, private readonly ctx: RuleContext) {
    if (/^\[\d+:\d+\]$/.test(words[0] ?? '')) this.i++; // iptables-save -c counters
    if (words[this.i] !== '-A' && words[this.i] !== '--append') this.fail(`expected -A CHAIN, got '${words[this.i] ?? ''}'`);
    const chain = words[this.i + 1] ?? this.fail('-A needs a chain name');
    this.i += 2;
    this.rule = { chain, line: lineNo, comment: null, header: {}, matches: [], target: { kind: 'count' } };
  }

  parse(): ParsedRule {
    let negate = false;
    for (; this.i < this.words.length; this.i++) {
      const w = this.words[this.i];
      if (w === '!') { negate = true; continue; }
      const neg = negate;
      negate = false;
      if (!this.header(w, neg) && !this.other(w)) this.matchOption(w, neg);
      this.checkProtocol();
    }
    if (negate) this.fail("'!' at the end of the rule");
    if (this.ctx.backend === 'nft') {
      for (const m of this.rule.matches) if (m.module === 'tcp' || m.module === 'udp') nftPorts(m);
    }
    return this.rule;
  }

  private fail(msg: string): never { throw new ImportError(this.lineNo, msg); }

  private value(opt: string): string {
    const v = this.words[++this.i];
    if (v === undefined) this.fail(`${opt} needs a value`);
    return v;
  }

  /** Run a value parser; its ValueError becomes this line's ImportError. */
  private wrap<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ValueError) this.fail(e.message);
      throw e;
    }
  }

  /** ip_packet_match options: addresses, interfaces, protocol, fragments. False when `w` is not one. */
  private header(w: string, neg: boolean): boolean {
    const h = this.rule.header;
    switch (w) {
      case '-s': case '--source': case '-d': case '--destination': {
        const items = this.wrap(() => this.value(w).split(',').map((x) => parseAddressItem(x)));
        if (items.some((it) => (it.kind === 'prefix' ? it.prefix.family : it.range.family) !== this.ctx.family)) {
          this.fail(`${w}: address of the wrong family for ${this.ctx.family === 4 ? 'iptables' : 'ip6tables'}`);
        }
        h[w === '-s' || w === '--source' ? 'src' : 'dst'] = { negate: neg, values: items };
        return true;
      }
      case '-i': case '--in-interface': case '-o': case '--out-interface':
        h[w === '-i' || w === '--in-interface' ? 'in' : 'out'] = { negate: neg, values: [this.wrap(() => parseInterface(this.value(w)))] };
        return true;
      case '-p': case '--protocol':
        this.protocol(w, neg);
        return true;
      case '-f': case '--fragment':
        if (this.ctx.family === 6) this.fail('-f is not an ip6tables option (use -m frag, which is unsupported)');
        h.fragment = { negate: false, values: neg ? [0, 1] : [2] };
        return true;
      default:
        return false;
    }
  }

  private protocol(w: string, neg: boolean): void {
    const p = this.wrap(() => parseProtocol(this.value(w)));
    if (p === -1 || p === 0) { // all / 0: any protocol
      if (neg) this.fail('! -p all matches nothing');
      return;
    }
    this.proto = neg ? null : p;
    // IPv4: the IP header's own protocol field; IPv6: past extension headers
    // (iptables-nft: meta l4proto, which stops at AH and never drops).
    const h = this.rule.header;
    if (this.ctx.family === 4) h.ipProto = { negate: neg, values: [p] };
    else if (this.ctx.backend === 'nft') h.nftProto = { negate: neg, values: [p] };
    else h.nfProto = { negate: neg, values: [p] };
  }

  /** -m (a new match block) and -j/-g (the target). False when `w` is neither. */
  private other(w: string): boolean {
    switch (w) {
      case '-m': case '--match':
        this.startMatch(this.value(w));
        return true;
      case '-j': case '--jump': case '-g': case '--goto': {
        if (this.targetSeen) this.fail('more than one target');
        this.targetSeen = true;
        const name = this.value(w);
        const rest = this.words.slice(this.i + 1);
        this.i = this.words.length;
        this.rule.target = parseTarget(name, rest, w === '-g' || w === '--goto', this.lineNo, this.ctx);
        return true;
      }
      default:
        return false;
    }
  }

  private startMatch(mod: string): void {
    if (!(mod in MODULES)) throw new UnsupportedError(this.lineNo, `unsupported match -m ${mod}`);
    if (mod === 'icmp' && this.ctx.family === 6) this.fail('-m icmp in an ip6tables file (use -m icmp6)');
    if (mod === 'icmp6' && this.ctx.family === 4) this.fail('-m icmp6 in an iptables file (use -m icmp)');
    const m: Match = { module: mod, conditions: {}, hotdrop: MODULES[mod] };
    // These matches return false for a later fragment (the kernel checks fragoff
    // first) and drop a packet whose header they cannot read (a sibling rule,
    // import.ts): they hold only with their header whole at netfilter's
    // transport offset, which a later fragment has none of (l4-avail is
    // absent there, also when the IPv6 fragment header is cut short after
    // its offset, which the strict decoder calls no fragment). ip6t_ah finds
    // AH by its own walk and never looks at fragoff: it matches any AH found
    // (the SPI is there), whatever comes after it.
    if (mod === 'ah' && this.ctx.family === 6) m.conditions.ahSpi = { negate: false, values: [{ lo: 0, hi: 0xffffffff }] };
    else if (m.hotdrop) m.conditions.l4Avail = { negate: false, values: [{ lo: HEADER_BYTES[m.hotdrop], hi: 65535 }] };
    this.current = m;
    this.rule.matches.push(m);
  }

  /** An option of the current -m block (checked against OPTION_MODULES once). */
  private matchOption(w: string, neg: boolean): void {
    const modules = OPTION_MODULES[w];
    if (!modules) throw new UnsupportedError(this.lineNo, `unsupported option ${w}`);
    if (!this.current || !modules.includes(this.current.module)) this.fail(`${w} outside -m ${modules.join('/-m ')}`);
    const c = this.current.conditions;
    const port = (): Range[] => this.wrap(() => [parseRange(this.value(w), 65535, 'port')]);
    switch (w) {
      case '--sport': case '--source-port': c.sport = { negate: neg, values: port() }; break;
      case '--dport': case '--destination-port': c.dport = { negate: neg, values: port() }; break;
      case '--sports': case '--source-ports': case '--dports': case '--destination-ports': case '--ports': this.multiport(w, neg, c); break;
      case '--espspi': c.spi = { negate: neg, values: this.wrap(() => [parseRange(this.value(w), 0xffffffff, 'spi')]) }; break;
      case '--ahspi': c.ahSpi = { negate: neg, values: this.wrap(() => [parseRange(this.value(w), 0xffffffff, 'spi')]) }; break;
      case '--icmp-type': case '--icmpv6-type': this.icmp(w, neg, c); break;
      case '--src-range': case '--dst-range':
        c[w === '--src-range' ? 'src' : 'dst'] = { negate: neg, values: [this.wrap(() => parseAddressItem(this.value(w)))] };
        break;
      case '--match-set': this.matchSet(w, neg, c); break;
      case '--state': case '--ctstate':
        c.ctstate = { negate: neg, values: this.value(w).split(',').map((s) => CT[s.toUpperCase()] ?? this.fail(`unsupported conntrack state '${s}'`)) };
        break;
      case '--mark': {
        const m = this.wrap(() => parseMark(this.value(w)));
        c.mark = { value: m.value, mask: m.mask, negate: neg };
        break;
      }
      case '--comment': this.rule.comment = this.value(w); break;
      case '--length': c.length = { negate: neg, values: [this.wrap(() => parseRange(this.value(w), 65535, 'length'))] }; break;
    }
  }

  private multiport(w: string, neg: boolean, c: Conditions): void {
    const list = this.wrap(() => this.value(w).split(',').map((p) => parseRange(p, 65535, 'port')));
    if (list.length > 15) this.fail('multiport takes at most 15 ports');
    if (w === '--ports') (c as Conditions & { ports?: { negate: boolean; values: Range[] } }).ports = { negate: neg, values: list };
    else c[w.startsWith('--s') ? 'sport' : 'dport'] = { negate: neg, values: list };
  }

  private icmp(w: string, neg: boolean, c: Conditions): void {
    const v6 = w === '--icmpv6-type';
    const text = this.value(w);
    c.icmp = text === 'any'
      ? { negate: neg, values: Array.from({ length: 256 }, (_, t) => ({ v6, type: t, code: { lo: 0, hi: 255 } })) }
      : { negate: neg, values: [this.wrap(() => parseIcmp(text, v6))] };
  }

  private matchSet(w: string, neg: boolean, c: Conditions): void {
    const name = this.value(w);
    const dir = this.value(w);
    if (!this.ctx.ipsets.has(name)) this.fail(`set '${name}' is unknown: give its contents with --ipset FILE (ipset save output)`);
    if (dir !== 'src' && dir !== 'dst') this.fail(`--match-set ${name} ${dir}: only single-dimension sets (src or dst) are supported`);
    c[dir as 'src' | 'dst'] = { negate: neg, sets: [name] };
  }

  /** -m tcp / -m udp port matches need the matching -p (iptables refuses the rule otherwise). */
  private checkProtocol(): void {
    const m = this.current;
    if (this.proto === null || !m || (m.module !== 'tcp' && m.module !== 'udp') || !m.hotdrop) return;
    if (this.proto !== (m.module === 'tcp' ? 6 : 17)) this.fail(`-m ${m.module} needs -p ${m.module}`);
  }
}

const FULL: Range = { lo: 0, hi: 65535 };
const isFull = (c: Cond<Range>): boolean => c.values.length === 1 && c.values[0].lo === 0 && c.values[0].hi === 65535;
const single = (c: Cond<Range>): number | null => (c.values.length === 1 && c.values[0].lo === c.values[0].hi ? c.values[0].lo : null);

/**
 * -m tcp / -m udp as iptables-nft 1.8.9 loads them (add_nft_tcpudp in
 * iptables/nft.c, checked with `nft --debug=netlink list ruleset`):
 * - no ports, or both ranges 0:65535 and neither negated: the xtables match
 *   itself (compat), which keeps legacy's semantics;
 * - otherwise payload loads and compares, with no hotdrop and no fragment
 *   check: a 0:65535 range is left out even when negated; one source and one
 *   destination port, neither 0 and negated alike, become one 4-byte compare,
 *   so negated they mean "not both", not "neither"; any other range is a
 *   2-byte load of its own. The loads read the nft-sport / nft-dport fields.
 */
function nftPorts(m: ParsedRule['matches'][number]): void {
  const c = m.conditions;
  const sp = c.sport ?? { negate: false, values: [FULL] }, dp = c.dport ?? { negate: false, values: [FULL] };
  if (isFull(sp) && isFull(dp) && !sp.negate && !dp.negate) return;
  m.hotdrop = null;
  delete c.l4Avail;
  delete c.sport;
  delete c.dport;
  const a = single(sp), b = single(dp);
  if (a && b && sp.negate && dp.negate) {
    m.either = [
      { nftSport: { negate: true, values: [{ lo: a, hi: a }] }, nftDport: { negate: false, values: [FULL] } },
      { nftSport: { negate: false, values: [{ lo: a, hi: a }] }, nftDport: { negate: true, values: [{ lo: b, hi: b }] } },
    ];
    return;
  }
  if (!isFull(sp)) c.nftSport = sp;
  if (!isFull(dp)) c.nftDport = dp;
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
        const { value, mask } = parseMark(arg, 'action');
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
