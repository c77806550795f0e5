/**
 * Wireshark as an oracle: run `tshark -T json -e ...` over a capture and
 * compare, field by field, with `nfsieve inspect --json`. Where Wireshark's
 * view differs from ours by definition, the rule is written here and in
 * docs/decoding.md.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { ROOT } from './compare';

export function haveTshark(): boolean {
  try {
    execFileSync('tshark', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const FIELDS = [
  'frame.protocols', 'ip.src', 'ip.dst', 'ip.proto', 'ip.flags.mf', 'ip.frag_offset', 'ipv6.src', 'ipv6.dst', 'ipv6.nxt',
  'ipv6.hopopts.nxt', 'ipv6.routing.nxt', 'ipv6.dstopts.nxt', 'ipv6.fraghdr.nxt', 'ipv6.fraghdr.offset', 'ipv6.fraghdr.more',
  'ah.next_header', 'ah.spi', 'udp.srcport', 'udp.dstport', 'tcp.srcport', 'tcp.dstport', 'esp.spi', 'icmp.type', 'icmp.code',
  'icmpv6.type', 'icmpv6.code', 'isakmp.ispi', 'isakmp.rspi', 'isakmp.version', 'isakmp.exchangetype', 'isakmp.flags',
  'isakmp.messageid', 'udpencap.nat_keepalive', '_ws.malformed', '_ws.expert.severity',
];

/** Wireshark's expert severities (epan/proto.h): PI_WARN and above mark a problem. */
const PI_WARN = 0x00600000;

/**
 * How nfsieve's `malformed` kinds correspond to Wireshark's own markers (a
 * "Malformed Packet" exception, or an expert item of severity warning or
 * error). Strict kinds: Wireshark marks every such frame. Loose kinds: it
 * marks most of them, and the deliberate differences are in docs/decoding.md
 * (an 8-byte AH is walked without a warning; a short ICMP, UDP, AH or
 * extension header whose bytes are all the dissector asks for; an IKE header
 * under 28 bytes given to another dissector; an IPv4 total length shorter
 * than the capture, which Wireshark only trims).
 */
export const MALFORMED_STRICT = new Set(['ip-truncated', 'ip-header-length', 'ip-version', 'link-truncated']);

/** An IPv4 header Wireshark refuses to dissect: it shows no addresses, nfsieve still reports them. */
const BAD_IP_HEADER = new Set(['ip-header-length', 'ip-version']);

/** What one comparison looked at: fields compared, and per malformed kind, frames Wireshark marked too or not. */
export interface CompareStats {
  frames: number;
  ipFrames: number;
  fields: number;
  malformed: Map<string, { marked: number; unmarked: number }>;
  /** Frames nfsieve calls well-formed that Wireshark marks (its payload dissectors go further). */
  onlyWireshark: number;
}

export const newStats = (): CompareStats => ({ frames: 0, ipFrames: 0, fields: 0, malformed: new Map(), onlyWireshark: 0 });

type Layers = Record<string, string[]>;

export function tsharkFields(file: string): Layers[] {
  const args = ['-r', file, '-n', '-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE', '-T', 'json'];
  for (const f of FIELDS) args.push('-e', f);
  const out = execFileSync('tshark', args, { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'ignore'] });
  const docs = JSON.parse(out) as { _source: { layers: Layers } }[];
  return docs.map((d) => d._source.layers);
}

const num = (s: string | undefined): number | null => (s === undefined ? null : Number(s));
const first = (l: Layers, k: string): string | undefined => l[k]?.[0];
const EXT = new Set([0, 43, 44, 51, 60]);

/**
 * Compare one frame. `ours` is an inspect --json object. Returns a list of
 * disagreements (empty when the two agree).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tshark's JSON, whatever its dissectors put in it
export function compareFrame(l: Layers, ours: Record<string, any>, stats: CompareStats = newStats()): string[] {
  const bad: string[] = [];
  const expect = (what: string, theirs: unknown, mine: unknown): void => {
    stats.fields++;
    if (JSON.stringify(theirs) !== JSON.stringify(mine)) bad.push(`${what}: tshark ${JSON.stringify(theirs)}, nfsieve ${JSON.stringify(mine)}`);
  };
  stats.frames++;
  const marked = l['_ws.malformed'] !== undefined || (l['_ws.expert.severity'] ?? []).some((s) => Number(s) >= PI_WARN);
  if (ours.malformed !== null) {
    const m = stats.malformed.get(ours.malformed) ?? { marked: 0, unmarked: 0 };
    stats.malformed.set(ours.malformed, m);
    if (marked) m.marked++; else m.unmarked++;
    if (!marked && MALFORMED_STRICT.has(ours.malformed)) bad.push(`malformed: nfsieve ${ours.malformed}, tshark no malformed or expert warning`);
  } else if (marked) {
    stats.onlyWireshark++;
  }
  const v4 = first(l, 'ip.src');
  const v6 = first(l, 'ipv6.src');
  const protos = (first(l, 'frame.protocols') ?? '').split(':');
  const outer = protos.find((p) => p === 'ip' || p === 'ipv6');
  const family = outer === 'ip' ? 4 : outer === 'ipv6' ? 6 : null;
  if (ours.family === null) {
    // We report no IP only for non-IP frames or an unreadable IP header.
    if (ours.malformed === null) expect('family', family, null);
    return bad;
  }
  stats.ipFrames++;
  if (BAD_IP_HEADER.has(ours.malformed)) return bad; // marked by Wireshark (strict), nothing else to compare
  expect('family', family, ours.family);
  expect('src', family === 4 ? v4 : v6, ours.src);
  expect('dst', family === 4 ? first(l, 'ip.dst') : first(l, 'ipv6.dst'), ours.dst);
  // Upper-layer protocol: the end of the next-header chain.
  // tshark lists each field's values separately, so the chain's order is
  // lost; its upper-layer value is the one value that is not an extension
  // header (the first next-header of an inner, tunnelled IPv6 header is not
  // taken: only the outer header's own ipv6.nxt is read).
  const values = family === 4
    ? [first(l, 'ip.proto'), ...(l['ah.next_header'] ?? [])]
    : [first(l, 'ipv6.nxt'), ...['ipv6.hopopts.nxt', 'ipv6.routing.nxt', 'ipv6.dstopts.nxt', 'ipv6.fraghdr.nxt', 'ah.next_header'].flatMap((k) => l[k] ?? [])];
  const chain = values.filter((x): x is string => x !== undefined).map(Number);
  const upper = chain.find((v) => !EXT.has(v));
  if (ours.fragment !== 'later' && ours.malformed === null) {
    expect('proto', upper ?? chain[chain.length - 1], ours.proto);
  }
  // Fragments.
  if (family === 4) {
    const off = num(first(l, 'ip.frag_offset')) ?? 0;
    const mf = first(l, 'ip.flags.mf') === '1' || first(l, 'ip.flags.mf') === 'True';
    expect('fragment', off !== 0 ? 'later' : mf ? 'first' : 'none', ours.fragment);
  } else if (first(l, 'ipv6.fraghdr.offset') !== undefined) {
    const off = num(first(l, 'ipv6.fraghdr.offset'));
    const more = ['1', 'True', 'true'].includes(first(l, 'ipv6.fraghdr.more') ?? '');
    expect('fragment', off ? 'later' : more ? 'first' : 'none', ours.fragment);
  }
  // Tunnelled packets (IPv4/IPv6 in IP): tshark dissects the inner packet,
  // nfsieve stops at the outer one by definition.
  if (ours.fragment === 'later' || ours.proto === 4 || ours.proto === 41) return bad;
  // Ports: tshark dissects a transport header whenever it can read the ports.
  const sp = first(l, 'udp.srcport') ?? first(l, 'tcp.srcport');
  const dp = first(l, 'udp.dstport') ?? first(l, 'tcp.dstport');
  if (ours.proto === 6 || ours.proto === 17) {
    expect('sport', num(sp), ours.sport);
    expect('dport', num(dp), ours.dport);
  }
  const spi = first(l, 'esp.spi');
  const compareSpi = (): void => {
    if (ours.spi !== null || (spi !== undefined && ours.malformed === null)) expect('spi', num(spi), ours.spi);
  };
  if (ours.proto === 50) compareSpi();
  const ah = first(l, 'ah.spi');
  if (ours.ah !== null || ah !== undefined) expect('ah', ah === undefined ? null : { spi: Number(ah) }, ours.ah);
  const it = first(l, 'icmp.type') ?? first(l, 'icmpv6.type');
  const ic = first(l, 'icmp.code') ?? first(l, 'icmpv6.code');
  if (ours.icmp !== null || it !== undefined) expect('icmp', it === undefined ? null : { type: Number(it), code: Number(ic) }, ours.icmp);
  // Which dissector Wireshark gave the UDP payload: it prefers the lower port,
  // tries registered dissectors of either port and remembers conversations.
  // nfsieve decodes IKE whenever either port is 500, NAT-T whenever either is
  // 4500 (and neither is 500). Compare only where both made the same choice
  // of protocol family: Wireshark chose isakmp/udpencap and the ports are not
  // the mixed 500/4500 pair.
  const next = protos[protos.indexOf('udp') + 1];
  const ports = [ours.sport, ours.dport];
  const mixed = ports.includes(500) && ports.includes(4500);
  const ipsecDissector = next === 'isakmp' || next === 'udpencap';
  const compareIke = ours.proto === 17 && !mixed && (ipsecDissector || next === undefined);
  if (!compareIke) return bad;
  compareSpi();
  const ispi = first(l, 'isakmp.ispi');
  if (ours.ike !== null || (ispi !== undefined && ours.malformed === null)) {
    if (ispi === undefined) bad.push('ike: tshark none');
    else {
      expect('ike.ispi', ispi, ours.ike?.ispi ?? null);
      expect('ike.rspi', first(l, 'isakmp.rspi'), ours.ike?.rspi ?? null);
      expect('ike.version', Number(first(l, 'isakmp.version')) >> 4, ours.ike?.version ?? null);
      const ex = first(l, 'isakmp.exchangetype');
      if (ex !== undefined) expect('ike.exchange', Number(ex), ours.ike?.exchange ?? null);
      const fl = first(l, 'isakmp.flags');
      if (fl !== undefined) expect('ike.flags', Number(fl), ours.ike?.flags ?? null);
      const id = first(l, 'isakmp.messageid');
      if (id !== undefined) expect('ike.msgid', Number(id), ours.ike?.msgid ?? null);
    }
  }
  if (protos.includes('udpencap') || ours.natt !== null) {
    const at = protos.indexOf('udpencap');
    const kind = l['udpencap.nat_keepalive'] ? 'keepalive' : protos[at + 1] === 'esp' ? 'esp' : protos[at + 1] === 'isakmp' ? 'ike' : null;
    if (ours.malformed === null || kind !== null) expect('natt', at < 0 ? null : kind, ours.natt);
  }
  return bad;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tshark's JSON, whatever its dissectors put in it
export function inspectJson(file: string): Record<string, any>[] {
  const out = execFileSync(process.execPath, [path.join(ROOT, 'bin', 'nfsieve.js'), 'inspect', file, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return out.trim().split('\n').map((l) => JSON.parse(l));
}

export function compareFile(file: string, stats: CompareStats = newStats()): string[] {
  const theirs = tsharkFields(file);
  const ours = inspectJson(file);
  assert.equal(ours.length, theirs.length, `${file}: frame count`);
  const problems: string[] = [];
  ours.forEach((o, i) => {
    for (const p of compareFrame(theirs[i], o, stats)) problems.push(`${path.basename(file)} frame ${i}: ${p}`);
  });
  return problems;
}

/** Loose kinds must still be marked by Wireshark at least this often. */
export const LOOSE_SHARE = 0.5;

/** Problems with the malformed correspondence of loose kinds, over a whole comparison. */
export function looseMalformed(stats: CompareStats): string[] {
  return [...stats.malformed].filter(([k, m]) => !MALFORMED_STRICT.has(k) && m.marked < LOOSE_SHARE * (m.marked + m.unmarked))
    .map(([k, m]) => `${k}: Wireshark marked ${m.marked} of ${m.marked + m.unmarked}`);
}

