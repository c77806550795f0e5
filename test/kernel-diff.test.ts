/**
 * The Linux kernel as the oracle (root, in CI): random iptables-save and
 * ip6tables-save rule sets are loaded into a network namespace, random packets
 * (valid IP headers, transport headers random, truncated or damaged) are sent
 * over a veth pair, and the rule that decided each packet in the kernel is
 * compared with `classify` of the imported policy.
 *
 * How the kernel's decision is observed: every terminal target is rewritten
 * into a jump to a chain that logs the packet with NFLOG (prefix: the rule's
 * line) and drops it; a last INPUT rule logs "DEFAULT". A packet that reaches
 * the raw table ("SEEN") but leaves no decision record was dropped by a match
 * (hotdrop). Connection tracking is bypassed (CT --notrack), so every packet's
 * state is "untracked", which `classify` is told. tcpdump records the NFLOG
 * group; each packet carries its sequence number in the IPv4 identification
 * or the IPv6 flow label. Every rule set runs once per backend:
 * iptables-legacy-restore and iptables-nft-restore (whose native port and
 * protocol matches do not hotdrop: docs/semantics.md), the iptables-save
 * header naming the backend as a real file would. Packets the kernel never
 * evaluated are accounted per packet class (crafted, header chains, lone
 * IPv4 fragments), each with its own floor.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { parseIpv4, parseIpv6 } from '../src/decode/address';
import { Lab, Link, labSkip, sh, TOOLS } from './support/netns';
import { exited, outputContains } from './support/child';
import { Rng, ipPacket, randomUpper, mutate } from './support/packets';
import { randomIptablesSave, AddressPools, isHotdrop } from './support/iptables';
import { randomChainPacket } from './support/headers';
import { importIptables, loadIpset } from '../src/iptables/import';
import { Classifier } from '../src/classifier';
import { compile } from '../src/compile/compile';
import { parseCapture } from '../src/capture/pcap';
import { hex } from './support/compare';

const skip = labSkip([TOOLS.ipset, TOOLS.tcpdump, TOOLS.iptablesLegacy]);
const SEED = Number(process.env.NFSIEVE_SEED ?? Date.now() % 0x7fffffff);
const RULE_SETS = 24; // per backend
const PACKETS = 1000;
const BACKENDS = ['legacy', 'nft'] as const;
const GROUP = 5;

let lab: Lab;
let gw: Link, sender: Link;
let tmpSets = '';

// Addresses: the sender's pool and the gateway's own addresses (so packets are delivered locally).
const SRC4 = (rng: Rng): string => `10.202.${rng.int(4)}.${1 + rng.int(8)}`;
const DST4 = (rng: Rng): string => `10.201.${rng.int(2)}.1`;
const SRC6 = (rng: Rng): string => `fd00:202::${(1 + rng.int(8)).toString(16)}`;
const DST6 = (rng: Rng): string => `fd00:201::${(1 + rng.int(2)).toString(16)}`;

const POOLS: AddressPools = {
  prefix(rng, family) {
    if (family === 4) return rng.pick([`${SRC4(rng)}/32`, `${DST4(rng)}/32`, `10.202.${rng.int(4)}.0/24`, '10.202.0.0/16', '10.201.0.0/16', '10.0.0.0/8']);
    return rng.pick([`${SRC6(rng)}/128`, `${DST6(rng)}/128`, 'fd00:202::/32', 'fd00:201::/32', `fd00:202::/${120 + rng.int(8)}`]);
  },
  range(rng, family) {
    return family === 4 ? `10.202.0.1-10.202.${rng.int(4)}.5` : `fd00:202::1-fd00:202::${1 + rng.int(8)}`;
  },
};

const IPSETS = ['create gw4 hash:net family inet', 'add gw4 10.202.0.1', 'add gw4 10.202.1.0/24', 'create gw6 hash:ip family inet6', 'add gw6 fd00:202::2', ''].join('\n');

function toBytes(text: string): Uint8Array {
  const bytes = text.includes(':') ? parseIpv6(text) : parseIpv4(text);
  if (!bytes) throw new Error(`not an address: ${text}`);
  return bytes;
}

/**
 * Whether nf_defrag_ipv6 (loaded with connection tracking) takes the packet:
 * find_prev_fhdr() walks extension headers and AH, 2 bytes each, to a
 * fragment header. It then holds fragments, and reassembles an atomic one
 * without its fragment header (8 bytes shorter) before the raw table.
 */
function defragFinds(ip: Uint8Array): boolean {
  let next = ip[6];
  let at = 40;
  while (next !== 44) {
    if (![0, 43, 51, 60].includes(next) || at + 2 > ip.length) return false;
    const len = next === 51 ? (ip[at + 1] + 2) * 4 : (ip[at + 1] + 1) * 8;
    next = ip[at];
    at += len;
  }
  return at + 8 <= ip.length;
}

/** A generated packet and its class, for per-class accounting of what the kernel saw. */
interface Sent { ip: Uint8Array; cls: string }

/** A packet the kernel's IP layer accepts: correct lengths and checksum, our sequence number inside. */
function packet(rng: Rng, family: 4 | 6, seq: number): Sent {
  const src = toBytes(family === 4 ? SRC4(rng) : SRC6(rng)), dst = toBytes(family === 4 ? DST4(rng) : DST6(rng));
  // Half of them: header chains in any order, lengths at their boundaries.
  if (rng.chance(0.5)) {
    const ip = stamp(randomChainPacket(rng, family, src, dst, { deliverable: true }), seq, false);
    // IPv4 fragments are reassembled by ip_local_deliver() before the INPUT hook.
    const frag = family === 4 && (new DataView(ip.buffer, ip.byteOffset).getUint16(6) & 0x3fff) !== 0;
    return { ip, cls: frag ? 'ipv4-fragment' : family === 6 && defragFinds(ip) ? 'ipv6-fragment' : family === 6 && ip[6] === 0 ? 'chain-hbh-first' : 'chain' };
  }
  const { proto, upper } = randomUpper(rng, family);
  const spec = { family, src, dst, proto, upper, ttl: 64 } as Parameters<typeof ipPacket>[0];
  if (rng.chance(0.1)) spec.ahSpi = rng.pick([0x100, rng.u32()]);
  if (family === 6 && rng.chance(0.2)) spec.extHeaders = Array.from({ length: 1 + rng.int(2) }, () => rng.pick([43, 60]));
  let ip = ipPacket(spec);
  const hdr = family === 4 ? 20 : 40;
  if (rng.chance(0.4)) {
    // Damage only what follows the IP header; sometimes cut it short.
    const tail = mutate(rng, ip.subarray(hdr));
    ip = new Uint8Array([...ip.subarray(0, hdr), ...tail]);
  }
  return { ip: stamp(ip, seq, true), cls: 'crafted' };
}

/** Our sequence number in the IPv4 identification / IPv6 flow label; the lengths (when asked) and the IPv4 checksum right. */
function stamp(ip: Uint8Array, seq: number, lengths: boolean): Uint8Array {
  const v = new DataView(ip.buffer, ip.byteOffset, ip.byteLength);
  if (ip[0] >> 4 === 4) {
    if (lengths) v.setUint16(2, ip.length);
    v.setUint16(4, seq);
    v.setUint16(10, 0);
    let sum = 0;
    for (let i = 0; i < (ip[0] & 15) * 4; i += 2) sum += v.getUint16(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    v.setUint16(10, ~sum & 0xffff);
  } else {
    v.setUint32(0, (6 << 28) | (seq & 0xfffff));
    if (lengths) v.setUint16(4, ip.length - 40);
  }
  return ip;
}

function seqOf(ip: Uint8Array): number {
  const v = new DataView(ip.buffer, ip.byteOffset, ip.byteLength);
  return ip[0] >> 4 === 4 ? v.getUint16(4) : v.getUint32(0) & 0xfffff;
}

const mac = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
const ether = (ip: Uint8Array): Uint8Array => new Uint8Array([...mac(gw.mac), ...mac(sender.mac), ...(ip[0] >> 4 === 4 ? [8, 0] : [0x86, 0xdd]), ...ip]);

/**
 * Rewrite terminal targets into logging chains; returns the instrumented text.
 * INPUT's rules move to a chain MAIN that INPUT calls, followed by the DEFAULT
 * logger: a RETURN or a goto that falls off its chain then still reaches the
 * logger (in INPUT itself, both would skip it and apply the policy).
 */
function instrument(text: string): string {
  const out: string[] = [];
  const chains: string[] = [];
  text.split('\n').forEach((line, i) => {
    const renamed = line.replace(/^-A INPUT( |$)/, '-A MAIN$1');
    const m = /^(-A \S+ ?.*?)-j (ACCEPT|DROP|REJECT|NFQUEUE)( .*)?$/.exec(renamed);
    if (m) {
      const chain = `R${i + 1}`;
      chains.push(chain);
      out.push(`${m[1]}-j ${chain}`);
    } else if (line === 'COMMIT') {
      for (const c of chains) out.push(`-A ${c} -j NFLOG --nflog-group ${GROUP} --nflog-prefix ${c}`, `-A ${c} -j DROP`);
      out.push('-A INPUT -j MAIN', `-A INPUT -j NFLOG --nflog-group ${GROUP} --nflog-prefix DEFAULT`, 'COMMIT');
    } else {
      out.push(renamed);
    }
  });
  const at = out.findIndex((l) => l.startsWith(':OUTPUT'));
  out.splice(at + 1, 0, ':MAIN - [0:0]', ...chains.map((c) => `:${c} - [0:0]`));
  return out.join('\n');
}

/** NFLOG records from a tcpdump capture (link type 239): prefix and the packet's sequence number. */
function nflogRecords(file: string): { prefix: string; seq: number; family: number }[] {
  const records: { prefix: string; seq: number; family: number }[] = [];
  const frames = parseCapture(fs.readFileSync(file), file, { allowLinkTypes: [239] });
  for (const f of frames) {
    const d = f.data;
    let prefix = '';
    let payload: Uint8Array | null = null;
    for (let at = 4; at + 4 <= d.length;) {
      const len = d[at] | (d[at + 1] << 8);
      const type = (d[at + 2] | (d[at + 3] << 8)) & 0x7fff;
      if (len < 4 || at + len > d.length) break;
      const value = d.subarray(at + 4, at + len);
      if (type === 10) prefix = Buffer.from(value).toString('utf8').replace(/\0.*$/, '');
      if (type === 9) payload = value;
      at += (len + 3) & ~3;
    }
    if (payload && payload.length >= 20) records.push({ prefix, seq: seqOf(payload), family: payload[0] >> 4 });
  }
  return records;
}

before(() => {
  if (skip) return;
  lab = new Lab(`nfsk${process.pid % 10000}`);
  [gw, sender] = lab.connect('gw', 'sndr', 41);
  for (let k = 0; k < 2; k++) {
    sh(['ip', 'addr', 'add', `10.201.${k}.1/16`, 'dev', gw.ifname], { ns: gw.ns });
    sh(['ip', '-6', 'addr', 'add', `fd00:201::${k + 1}/64`, 'dev', gw.ifname, 'nodad'], { ns: gw.ns });
  }
  sh(['ipset', 'restore'], { ns: gw.ns, input: IPSETS });
  // The raw-table markers stay in iptables-legacy for both backends' runs.
  for (const cmd of ['iptables-legacy', 'ip6tables-legacy']) {
    sh([cmd, '-t', 'raw', '-A', 'PREROUTING', '-i', gw.ifname, '-j', 'CT', '--notrack'], { ns: gw.ns });
    sh([cmd, '-t', 'raw', '-A', 'PREROUTING', '-i', gw.ifname, '-j', 'NFLOG', '--nflog-group', String(GROUP), '--nflog-prefix', 'SEEN'], { ns: gw.ns });
  }
  tmpSets = lab.file('ipsets', IPSETS);
});

const EMPTY = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';

/** Load one rule set with one backend, the other family's and the other backend's filter tables empty. */
function load(backend: 'legacy' | 'nft', family: 4 | 6, text: string): void {
  for (const b of BACKENDS) {
    for (const f of [4, 6] as const) {
      const cmd = `${f === 4 ? 'iptables' : 'ip6tables'}-${b}-restore`;
      sh([cmd], { ns: gw.ns, input: b === backend && f === family ? instrument(text) : EMPTY });
    }
  }
}

/**
 * Per packet class: `exposed` counts the packets the raw table can see at
 * all. With connection tracking loaded (a rule set with state or conntrack
 * matches), nf_defrag_ipv4 runs before the raw table and holds every lone
 * IPv4 fragment, so those are not exposed, and `held` counts any of them the
 * raw table saw anyway (there must be none).
 */
interface ClassCount { sent: number; exposed: number; seen: number; held: number; compared: number; decided: number }

/** Send one rule set's packets, read the kernel's decisions, compare with classify. */
async function runSet(n: number, backend: 'legacy' | 'nft', rng: Rng, ipsets: ReturnType<typeof loadIpset>, classes: Map<string, ClassCount>, mismatches: string[]): Promise<number> {
  const family: 4 | 6 = n % 2 === 0 ? 4 : 6;
  const text = randomIptablesSave(rng, family, POOLS, backend);
  load(backend, family, text);
  // The backend comes from the iptables-save header line, as for a real file.
  const classifier = new Classifier(compile(importIptables(text, `set${n}`, {}, ipsets), { analyse: false }));
  // Sequence numbers unique over the whole run (16 bits: 2 x 24 x 1,000 fit), so a late
  // NFLOG record of an earlier set can never be taken for one of this set.
  const base = (BACKENDS.indexOf(backend) * RULE_SETS + n) * PACKETS;
  const sent = Array.from({ length: PACKETS }, (_, i) => packet(rng, family, base + i + 1));
  const packets = sent.map((s) => s.ip);
  const capture = lab.file(`nflog-${backend}-${n}.pcap`, '');
  const dump = spawn('ip', ['netns', 'exec', gw.ns, 'tcpdump', '--immediate-mode', '-i', `nflog:${GROUP}`, '-B', '16384', '-U', '-w', capture, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let dumpErr = '';
  dump.stderr.on('data', (d) => { dumpErr += d; });
  await outputContains(dump, dump.stderr, 'listening');
  lab.send(sender, packets.map(ether), 1, { chunk: 50, pauseMs: 5 });
  // nfnetlink_log flushes its batches at least once a second.
  await new Promise((r) => setTimeout(r, 1300));
  dump.kill('SIGINT');
  await exited(dump);
  // A record lost by the capture would look like a hotdrop: refuse to judge then.
  const lost = /(\d+) packets? dropped by kernel/.exec(dumpErr);
  assert.ok(!lost || lost[1] === '0', `the NFLOG capture lost records (${lost?.[0]}); rerun with NFSIEVE_SEED=${SEED}`);
  const records = nflogRecords(capture).filter((r) => r.family === family);
  const seen = new Set(records.filter((r) => r.prefix === 'SEEN').map((r) => r.seq));
  const decisions = records.filter((r) => r.prefix !== 'SEEN');
  const decided = new Map(decisions.map((r) => [r.seq, r.prefix]));
  assert.equal(decided.size, decisions.length, `a packet was decided twice: ${decisions.length - decided.size} duplicate records`);
  const results = classifier.classifyBatch(packets, { meta: { in: gw.ifname, ctstate: 'untracked' } });
  let hotdrops = 0;
  // A rule set with state/conntrack matches loads connection tracking and its defragmentation.
  const conntrack = /-m (state|conntrack) /.test(text);
  sent.forEach(({ ip: p, cls }, i) => {
    const seq = base + i + 1;
    const key = `IPv${family} ${cls}`;
    const c = classes.get(key) ?? { sent: 0, exposed: 0, seen: 0, held: 0, compared: 0, decided: 0 };
    const defragged = cls === 'ipv4-fragment' && conntrack;
    classes.set(key, c);
    c.sent++;
    if (!defragged) c.exposed++;
    if (decided.has(seq)) c.decided++;
    if (!seen.has(seq)) return; // dropped by the IP layer before netfilter: nothing to compare
    c.seen++;
    if (defragged) c.held++;
    if (cls === 'ipv4-fragment') return; // reassembled before INPUT: asserted undecided below
    if (cls === 'ipv6-fragment' && conntrack) return; // held or reassembled (header removed) before raw
    c.compared++;
    const kernel = decided.get(seq) ?? 'HOTDROP';
    const r = results[i];
    const rule = r.index >= 0 ? classifier.policy.rules[r.index] : null;
    const ours = rule === null ? 'DEFAULT' : isHotdrop(rule) ? 'HOTDROP' : `R${r.line}`;
    if (kernel === 'HOTDROP') hotdrops++;
    if (ours !== kernel && mismatches.length < 10) mismatches.push(`${backend} set ${n} (IPv${family}) packet ${seq} ${hex(p)}: kernel ${kernel}, nfsieve ${ours} (line ${r.line})\n${text}`);
  });
  return hotdrops;
}

/** Share of each class the kernel must have seen (raw table); fragments and first hop-by-hop headers may be refused by the IP layer. */
const SEEN_FLOOR: Record<string, number> = { 'IPv4 crafted': 0.9, 'IPv6 crafted': 0.9, 'IPv4 chain': 0.5, 'IPv6 chain': 0.5, 'IPv6 chain-hbh-first': 0.05, 'IPv4 ipv4-fragment': 0.05, 'IPv6 ipv6-fragment': 0.05 };

for (const backend of BACKENDS) {
  test(`the kernel (iptables-${backend}) and classify --iptables decide alike: ${RULE_SETS} rule sets x ${PACKETS} packets (seed ${SEED})`, { skip }, async () => {
    const rng = new Rng(SEED + (backend === 'nft' ? 1 : 0));
    const ipsets = loadIpset(tmpSets);
    const classes = new Map<string, ClassCount>();
    const mismatches: string[] = [];
    let hotdrops = 0;
    for (let n = 0; n < RULE_SETS; n++) hotdrops += await runSet(n, backend, rng, ipsets, classes, mismatches);
    const table = [...classes].map(([k, c]) => `${k}: sent ${c.sent}${c.exposed < c.sent ? ` (${c.sent - c.exposed} held by defragmentation)` : ''}, seen ${c.seen}, compared ${c.compared}`).join('; ');
    console.log(`# iptables-${backend}: ${table}; hotdrops ${hotdrops}`);
    assert.deepEqual(mismatches, [], `seed ${SEED}`);
    for (const [k, c] of classes) {
      const floor = SEEN_FLOOR[k];
      assert.ok(floor !== undefined, `unexpected packet class ${k}`);
      assert.ok(c.sent >= 100, `${k}: only ${c.sent} packets generated`);
      assert.ok(c.seen - c.held >= floor * c.exposed, `${k}: the kernel saw ${c.seen - c.held} of the ${c.exposed} it could see (floor ${floor}): ${table}`);
      assert.equal(c.held, 0, `${k}: the raw table saw ${c.held} lone IPv4 fragments that defragmentation should hold: ${table}`);
    }
    // Lone IPv4 fragments for this host never reach the INPUT chain (reassembly waits for the rest).
    const frags = classes.get('IPv4 ipv4-fragment');
    assert.ok(frags && frags.decided === 0, `IPv4 fragments reached INPUT: ${table}`);
    assert.ok(hotdrops > 0, 'the generator must exercise truncated headers');
  });
}


after(() => { if (lab) lab.cleanup(); });

