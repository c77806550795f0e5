/**
 * An iptables oracle written from the kernel's code, sharing nothing with
 * the importer or the decoders: its own tokenizer and rule reader for the
 * subset the random rule sets use, and match functions that read the raw IP
 * packet the way the kernel functions do (ip_packet_match/ip6_packet_match,
 * ipv6_find_hdr, tcp_mt, udp_mt, multiport_mt, esp_mt, ah_mt/ah_mt6,
 * icmp_match/icmp6_match, iprange, set, state, mark, length; iptables-nft's
 * meta l4proto and payload port loads). Chains run on a call stack with
 * jumps, gotos, RETURN and policies; a match that cannot read its header
 * drops the packet (hotdrop). It only reads; byte offsets are from the IP
 * header, and the packet ends at the IP header's length or the capture.
 */

export interface OracleMeta { in?: string; out?: string; ctstate?: string; mark?: number }
export interface OracleVerdict { verdict: 'accept' | 'drop' | 'reject' | 'queue'; line: number | null; mark: number | null }
type Backend = 'legacy' | 'nft';

interface Match { module: string; opts: { name: string; neg: boolean; value: string[] }[] }
interface Rule { line: number; neg: Map<string, boolean>; hdr: Map<string, string>; matches: Match[]; target: string; targetArgs: string[]; goto: boolean }
interface Table { policy: string; chains: Map<string, Rule[]>; family: 4 | 6; backend: Backend }

/** Words of a line: "double quoted" strings and backslash escapes inside them, as iptables-save prints. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      cur ??= '';
      for (i++; i < line.length && line[i] !== '"'; i++) cur += line[i] === '\\' ? line[++i] : line[i];
    } else if (c === ' ') {
      if (cur !== null) out.push(cur);
      cur = null;
    } else cur = (cur ?? '') + c;
  }
  if (cur !== null) out.push(cur);
  return out;
}

const ARITY: Record<string, number> = { '--match-set': 2 };

/** Read the filter table of an iptables-save text (INPUT and user chains). */
export function readTable(text: string, family: 4 | 6, backend: Backend): Table {
  const t: Table = { policy: 'ACCEPT', chains: new Map([['INPUT', []]]), family, backend };
  text.split('\n').forEach((raw, idx) => {
    const line = raw.trim();
    if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(' ');
      if (name === 'INPUT') t.policy = policy;
      if (!t.chains.has(name)) t.chains.set(name, []);
      return;
    }
    if (!line.startsWith('-A ')) return;
    const w = words(line);
    const rule: Rule = { line: idx + 1, neg: new Map(), hdr: new Map(), matches: [], target: '', targetArgs: [], goto: false };
    let neg = false;
    for (let i = 2; i < w.length; i++) {
      if (w[i] === '!') { neg = true; continue; }
      if (w[i] === '-j' || w[i] === '-g') { rule.target = w[i + 1]; rule.goto = w[i] === '-g'; rule.targetArgs = w.slice(i + 2); break; }
      if (w[i] === '-m') { rule.matches.push({ module: w[++i], opts: [] }); neg = false; continue; }
      if (w[i].startsWith('--')) {
        const n = ARITY[w[i]] ?? 1;
        rule.matches[rule.matches.length - 1].opts.push({ name: w[i], neg, value: w.slice(i + 1, i + 1 + n) });
        i += n;
      } else if (w[i] === '-f') {
        rule.hdr.set('-f', ''); rule.neg.set('-f', neg);
      } else {
        rule.hdr.set(w[i], w[i + 1]); rule.neg.set(w[i], neg); i++;
      }
      neg = false;
    }
    t.chains.get(w[1])!.push(rule);
  });
  return t;
}

// ---- addresses ----------------------------------------------------------

function ipBytes(text: string): number[] {
  if (!text.includes(':')) return text.split('.').map(Number);
  const [head, tail] = text.split('::');
  const groups = (s: string | undefined): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head), tl = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array<number>(8 - h.length - tl.length).fill(0), ...tl];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

function inPrefix(addr: number[], spec: string): boolean {
  const [a, len] = spec.split('/');
  const net = ipBytes(a);
  if (net.length !== addr.length) return false;
  let bits = len === undefined ? addr.length * 8 : Number(len);
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const m = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((addr[i] & m) !== (net[i] & m)) return false;
  }
  return true;
}

function cmp(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** `ipset save` contents: set name to its entries (hash:ip, hash:net). */
export function readIpset(text: string): Map<string, string[]> {
  const sets = new Map<string, string[]>();
  for (const l of text.split('\n')) {
    const w = l.trim().split(/\s+/);
    if (w[0] === 'create') sets.set(w[1], []);
    if (w[0] === 'add') sets.get(w[1])!.push(w[2]);
  }
  return sets;
}

// ---- the packet as the kernel reads it ----------------------------------

interface Pkt {
  b: Uint8Array;
  len: number; // skb->len from the IP header on
  family: 4 | 6;
  src: number[];
  dst: number[];
}

function packetOf(b: Uint8Array): Pkt | null {
  const v = b[0] >> 4;
  if (v === 4 && b.length >= 20) {
    const total = (b[2] << 8) | b[3];
    return { b, len: Math.min(b.length, total), family: 4, src: [...b.subarray(12, 16)], dst: [...b.subarray(16, 20)] };
  }
  if (v === 6 && b.length >= 40) {
    const pl = (b[4] << 8) | b[5];
    return { b, len: pl === 0 ? b.length : Math.min(b.length, 40 + pl), family: 6, src: [...b.subarray(8, 24)], dst: [...b.subarray(24, 40)] };
  }
  return null;
}

/** skb_header_pointer(): the bytes, or null when they are not all there. */
const hp = (p: Pkt, off: number, n: number): Uint8Array | null => (off + n <= p.len ? p.b.subarray(off, off + n) : null);
const u16 = (x: Uint8Array, at: number): number => (x[at] << 8) | x[at + 1];
const u32 = (x: Uint8Array, at: number): number => ((x[at] << 24) >>> 0) + (x[at + 1] << 16) + (x[at + 2] << 8) + x[at + 3];

const EXTHDR = new Set([0, 43, 44, 51, 59, 60]);

/**
 * ipv6_find_hdr(): { proto, off, fragoff } or an error; target -1 walks to
 * the last header, `auth` is IP6_FH_F_AUTH (stop at AH, as nftables asks).
 */
function findHdr(p: Pkt, target: number, auth = false): { proto: number; off: number; fragoff: number } | 'EBADMSG' | 'ENOENT' {
  let start = 40;
  let next = p.b[6];
  for (;;) {
    const found = next === target;
    if (!EXTHDR.has(next) || next === 59) {
      if (target < 0 || found) break;
      return 'ENOENT';
    }
    const h = hp(p, start, 2);
    if (!h) return 'EBADMSG';
    if (next === 43 && !hp(p, start, 4)) return 'EBADMSG';
    let len: number;
    if (next === 44) {
      const f = hp(p, start + 2, 2);
      if (!f) return 'EBADMSG';
      const fragoff = u16(f, 0) & ~7;
      if (fragoff) {
        if (target < 0 && (!EXTHDR.has(h[0]) || h[0] === 59)) return { proto: h[0], off: start, fragoff };
        return 'ENOENT';
      }
      len = 8;
    } else if (next === 51) {
      if (auth && target < 0) break;
      len = (h[1] + 2) * 4;
    } else len = (h[1] + 1) * 8;
    if (found) break;
    next = h[0];
    start += len;
  }
  return { proto: next, off: start, fragoff: 0 };
}

const PROTO: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, esp: 50, ah: 51, 'ipv6-icmp': 58, icmpv6: 58, all: 0 };
const ICMP: Record<string, string> = { 'echo-request': '8', 'echo-reply': '0' };

/** Per-rule matching state: the kernel's par->thoff, par->fragoff and hotdrop. */
interface Par { thoff: number; fragoff: number; hotdrop: boolean; l4: boolean }

function range(text: string, v: number): boolean {
  const [lo, hi] = text.includes(':') ? text.split(':') : [text, text];
  return v >= (lo === '' ? 0 : Number(lo)) && v <= (hi === '' ? 0xffffffff : Number(hi));
}

/** ip_packet_match / ip6_packet_match (and the nftables equivalents for -p). */
function headerMatch(t: Table, r: Rule, p: Pkt, meta: OracleMeta, par: Par): boolean {
  const is = (k: string, cond: boolean): boolean => cond !== (r.neg.get(k) ?? false);
  for (const [k, v] of r.hdr) {
    if (k === '-s' && !is(k, inPrefix(p.src, v))) return false;
    if (k === '-d' && !is(k, inPrefix(p.dst, v))) return false;
    if (k === '-i' || k === '-o') {
      const name = k === '-i' ? meta.in : meta.out;
      const hit = name !== undefined && (v.endsWith('+') ? name.startsWith(v.slice(0, -1)) : name === v);
      if (!is(k, hit)) return false;
    }
  }
  if (p.family === 4) {
    const ihl = (p.b[0] & 15) * 4;
    par.thoff = ihl;
    par.fragoff = u16(p.b, 6) & 0x1fff;
    par.l4 = true;
    if (r.hdr.has('-f') && !is('-f', par.fragoff !== 0)) return false;
    const want = r.hdr.get('-p');
    return want === undefined || PROTO[want] === 0 || is('-p', p.b[9] === (PROTO[want] ?? Number(want)));
  }
  const want = r.hdr.get('-p');
  if (t.backend === 'nft') {
    // nft_set_pktinfo_ipv6: ipv6_find_hdr(-1, IP6_FH_F_AUTH) once per packet; failure: no l4proto.
    const f = findHdr(p, -1, true);
    par.l4 = typeof f !== 'string';
    // A later fragment returns before ipv6_find_hdr() writes the offset (Linux
    // 6.18), so nftables' transport offset stays 0: the IPv6 header itself.
    if (typeof f !== 'string') { par.thoff = f.fragoff ? 0 : f.off; par.fragoff = f.fragoff; }
    if (want === undefined || PROTO[want] === 0) return true;
    return typeof f !== 'string' && is('-p', f.proto === (PROTO[want] ?? Number(want)));
  }
  if (want === undefined || PROTO[want] === 0) return true;
  const f = findHdr(p, -1);
  if (typeof f === 'string') { par.hotdrop = true; return false; }
  par.thoff = f.off;
  par.fragoff = f.fragoff;
  par.l4 = true;
  return is('-p', f.proto === (PROTO[want] ?? Number(want)));
}

type Opt = { neg: boolean; value: string[] } | undefined;
const portRange = (o: Opt): [number, number] => {
  if (!o) return [0, 65535];
  const [lo, hi] = o.value[0].includes(':') ? o.value[0].split(':') : [o.value[0], o.value[0]];
  return [lo === '' ? 0 : Number(lo), hi === '' ? 65535 : Number(hi)];
};
const full = (o: Opt): boolean => { const [lo, hi] = portRange(o); return lo === 0 && hi === 65535; };

/** iptables/nft.c add_nft_udp/add_nft_tcp: payload loads unless the match is all defaults (then the xt match runs). */
function nftNative(sp: Opt, dp: Opt): boolean {
  return !(full(sp) && full(dp) && !sp?.neg && !dp?.neg);
}

/**
 * add_nft_tcpudp's expressions, run as nft_do_chain runs them: each load goes
 * through nft_payload_fast_eval(), which reads at the transport offset
 * whatever the fragment offset; when the bytes are not there, the slow path
 * fails too (fragoff, or skb_copy_bits). No l4proto: no match.
 */
function nftPorts(p: Pkt, par: Par, sp: Opt, dp: Opt): boolean {
  if (!par.l4) return false;
  const load = (off: number, n: number): number | null => {
    const h = hp(p, par.thoff + off, n);
    return h ? (n === 2 ? u16(h, 0) : u32(h, 0)) : null;
  };
  const [slo, shi] = portRange(sp), [dlo, dhi] = portRange(dp);
  if (slo && slo === shi && dlo && dlo === dhi && !!sp?.neg === !!dp?.neg) {
    const v = load(0, 4); // one 4-byte compare, eq or neq
    return v !== null && (v === ((slo << 16) | dlo) >>> 0) !== !!sp?.neg;
  }
  if (slo || shi < 65535) {
    const v = load(0, 2);
    if (v === null || (v >= slo && v <= shi) === !!sp?.neg) return false;
  }
  if (dlo || dhi < 65535) {
    const v = load(2, 2);
    if (v === null || (v >= dlo && v <= dhi) === !!dp?.neg) return false;
  }
  return true;
}

/** One -m block; false also when it set hotdrop. */
function matchOne(t: Table, m: Match, p: Pkt, meta: OracleMeta, par: Par, sets: Map<string, string[]>, mark: number): boolean {
  const opt = (n: string): { neg: boolean; value: string[] } | undefined => m.opts.find((o) => o.name === n || o.name === n.replace('--d', '--destination-').replace('--s', '--source-'));
  const test = (o: { neg: boolean } | undefined, hit: () => boolean): boolean => o === undefined || hit() !== o.neg;
  const header = (n: number): Uint8Array | null => {
    const h = hp(p, par.thoff, n);
    if (!h) par.hotdrop = true;
    return h;
  };
  switch (m.module) {
    case 'tcp': case 'udp': {
      const sp = opt('--sport'), dp = opt('--dport');
      if (t.backend === 'nft' && nftNative(sp, dp)) return nftPorts(p, par, sp, dp);
      if (par.fragoff) {
        if (m.module === 'tcp' && par.fragoff === 1 && p.family === 4) par.hotdrop = true;
        return false;
      }
      const h = header(m.module === 'tcp' ? 20 : 8);
      if (!h) return false;
      return test(sp, () => range(sp!.value[0], u16(h, 0))) && test(dp, () => range(dp!.value[0], u16(h, 2)));
    }
    case 'multiport': {
      if (par.fragoff) return false;
      const h = header(4);
      if (!h) return false;
      const o = m.opts[0];
      const inList = (v: number): boolean => o.value[0].split(',').some((x) => range(x, v));
      const [s, d] = [u16(h, 0), u16(h, 2)];
      const hit = o.name.startsWith('--s') ? inList(s) : o.name.startsWith('--d') ? inList(d) : inList(s) || inList(d);
      return hit !== o.neg;
    }
    case 'esp': {
      if (par.fragoff) return false;
      const h = header(8);
      if (!h) return false;
      const o = opt('--espspi');
      return test(o, () => range(o!.value[0], u32(h, 0)));
    }
    case 'ah': {
      const o = opt('--ahspi');
      if (p.family === 4) {
        if (par.fragoff) return false;
        const h = header(12);
        return h !== null && test(o, () => range(o!.value[0], u32(h, 4)));
      }
      const f = findHdr(p, 51);
      if (f === 'ENOENT') return false;
      // The 12 fixed bytes and the declared length must be there (Linux 6.18, measured).
      const at = f === 'EBADMSG' ? -1 : f.off;
      const h = at < 0 ? null : hp(p, at, 12);
      if (!h || !hp(p, at, (h[1] + 2) * 4)) { par.hotdrop = true; return false; }
      return test(o, () => range(o!.value[0], u32(h, 4)));
    }
    case 'icmp': case 'icmp6': {
      if (par.fragoff) return false;
      const h = header(8);
      if (!h) return false;
      const o = opt(m.module === 'icmp' ? '--icmp-type' : '--icmpv6-type')!;
      const [ty, code] = (ICMP[o.value[0]] ?? o.value[0]).split('/');
      return (h[0] === Number(ty) && (code === undefined || h[1] === Number(code))) !== o.neg;
    }
    case 'iprange': {
      const o = m.opts[0];
      const [lo, hi] = o.value[0].split('-').map(ipBytes);
      const a = o.name === '--src-range' ? p.src : p.dst;
      return (a.length === lo.length && cmp(a, lo) >= 0 && cmp(a, hi) <= 0) !== o.neg;
    }
    case 'set': {
      const o = m.opts[0];
      const a = o.value[1] === 'src' ? p.src : p.dst;
      return (sets.get(o.value[0]) ?? []).some((e) => inPrefix(a, e)) !== o.neg;
    }
    case 'state': case 'conntrack': {
      const o = m.opts[0];
      return o.value[0].toLowerCase().split(',').includes(meta.ctstate ?? '') !== o.neg;
    }
    case 'mark': {
      const o = m.opts[0];
      const [v, mask] = o.value[0].split('/').map(Number);
      return (((mark & (mask ?? 0xffffffff)) >>> 0) === v) !== o.neg;
    }
    case 'length': {
      const o = m.opts[0];
      const len = p.family === 4 ? u16(p.b, 2) : u16(p.b, 4) + 40;
      return range(o.value[0], len) !== o.neg;
    }
    default: return true; // comment
  }
}

/** Run INPUT on a raw IP packet (of the table's family). */
export function oracleRun(t: Table, ip: Uint8Array, meta: OracleMeta, sets: Map<string, string[]>): OracleVerdict {
  const p = packetOf(ip)!;
  let mark = meta.mark ?? 0;
  let markSet = false;
  const done = (verdict: OracleVerdict['verdict'], line: number | null): OracleVerdict => ({ verdict, line, mark: markSet ? mark : null });
  const run = (chain: string): OracleVerdict | 'return' => {
    for (const r of t.chains.get(chain)!) {
      const par: Par = { thoff: 0, fragoff: 0, hotdrop: false, l4: false };
      let ok = headerMatch(t, r, p, meta, par);
      for (const m of r.matches) {
        if (!ok) break;
        ok = matchOne(t, m, p, meta, par, sets, mark);
      }
      if (par.hotdrop) return done('drop', r.line);
      if (!ok) continue;
      switch (r.target) {
        case 'ACCEPT': return done('accept', r.line);
        case 'DROP': return done('drop', r.line);
        case 'REJECT': return done('reject', r.line);
        case 'NFQUEUE': return done('queue', r.line);
        case 'RETURN': return 'return';
        case 'LOG': case '': break;
        case 'MARK': {
          const [v, m] = r.targetArgs[1].split('/').map(Number);
          mark = ((mark & ~m) ^ v) >>> 0;
          markSet = true;
          break;
        }
        default: {
          const x = run(r.target);
          if (r.goto || x !== 'return') return x;
        }
      }
    }
    return 'return';
  };
  const x = run('INPUT');
  return x === 'return' ? done(t.policy === 'DROP' ? 'drop' : 'accept', null) : x;
}
