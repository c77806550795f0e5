/**
 * Matches on fragments and short headers against the kernel's rule counters,
 * one packet at a time (root, in CI), under both backends.
 *
 * iptables-nft: iptables-nft-restore turns `-m udp`/`-m tcp` port options into
 * nftables payload loads (docs/semantics.md): one or two 2-byte loads, or one
 * 4-byte load for a pair of single ports, read by nft_payload_fast_eval()
 * at nftables' transport offset whatever the fragment offset. That offset is
 * the end of the IPv4 header, even in a later fragment, and 0 (the IPv6
 * header itself) in an IPv6 later fragment. The random kernel test cannot
 * see IPv4 later fragments (INPUT gets them reassembled), so this test counts
 * in the raw table's PREROUTING, where every fragment passes on its own.
 *
 * iptables-legacy (and iptables-nft's compat matches): `-f`, and the xt
 * matches (tcp, udp, multiport, icmp, icmp6, esp, ah), which return false for
 * a later fragment before reading anything, drop a packet whose header they
 * cannot read, and (tcp) drop an IPv4 fragment at offset 1; until now
 * modelled from the source for IPv4 fragments, measured here.
 *
 * Each rule is loaded without a target (a counter); after each packet the
 * counters tell which rules matched, and the END rule whether the packet
 * got through them all (an xt match that could not read its header drops
 * it). nfsieve's answer for the same packet comes from importing each rule
 * alone with a target.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, Link, labSkip, sh, TOOLS } from './support/netns';
import { importIptables } from '../src/iptables/import';
import { Classifier } from '../src/classifier';
import { compile } from '../src/compile/compile';
import { hex } from './support/compare';

const skip = labSkip([TOOLS.iptablesLegacy]);

let lab: Lab;
const links = new Map<Backend, [Link, Link]>();
type Backend = 'legacy' | 'nft';

/** Sport 0x1111 (4369) and dport 0x2222 (8738) in the payload; 0x6001 (24577) and 0x2345 (9029) in the IPv6 header. */
const PORT_RULES = [
  '-p udp -m udp --dport 8738', '-p udp -m udp --sport 4369', '-p udp -m udp --dport 9029', '-p udp -m udp --sport 24577',
  '-p udp -m udp ! --dport 53', '-p udp -m udp ! --sport 53', '-p udp -m udp --sport 1:65535', '-p udp -m udp --dport 0',
  '-p udp -m udp --sport 4369 --dport 8738', '-p udp -m udp ! --sport 4369 ! --dport 8738', '-p udp -m udp ! --sport 4369 ! --dport 1',
  '-p udp -m udp ! --sport 24577 ! --dport 9029', '-p udp -m udp --sport 0 --dport 8738', '-p udp -m udp ! --sport 0:65535',
  '-p udp -m udp ! --sport 0:65535 --dport 8738', '-p udp -m udp ! --sport 4369 --dport 8738', '-p tcp -m tcp --dport 8738',
  '-p tcp -m tcp ! --sport 4369 ! --dport 8738',
];

/** xt matches (compat under iptables-nft): each drops a packet whose header it cannot read. */
const XT = (family: 4 | 6): string[] => [
  '-p udp -m udp --sport 0:65535', '-p udp -m multiport --dports 8738,53', '-p udp -m multiport ! --ports 53',
  family === 4 ? '-p icmp -m icmp --icmp-type 17/17' : '-p ipv6-icmp -m icmp6 --icmpv6-type 17/17',
  '-p esp -m esp --espspi 286335522', family === 4 ? '-p ah -m ah --ahspi 0' : '-m ah --ahspi 0', '-p udp -m udp', '-p tcp -m tcp',
];

/** Each backend's rules, those that never drop first so that a drop hides as few as possible. */
function rules(backend: Backend, family: 4 | 6): string[] {
  if (backend === 'nft') return [...PORT_RULES, ...XT(family)];
  return [...(family === 4 ? ['-f', '! -f -p udp'] : []), ...XT(family), ...PORT_RULES];
}

const SRC4 = [10, 202, 0, 7], DST4 = [10, 201, 0, 1];
const SRC6 = [0xfd, 0, 2, 2, ...Array(11).fill(0), 7], DST6 = [0xfd, 0, 2, 1, ...Array(11).fill(0), 1];
const PORTS = [0x11, 0x11, 0x22, 0x22, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

function ipv4(proto: number, fragField: number, body: number[]): Uint8Array {
  const total = 20 + body.length;
  const h = [0x45, 0, total >> 8, total & 255, 0x42, 0x42, fragField >> 8, fragField & 255, 64, proto, 0, 0, ...SRC4, ...DST4];
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (h[i] << 8) | h[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  h[10] = (~sum >> 8) & 255; h[11] = ~sum & 255;
  return new Uint8Array([...h, ...body]);
}

/** IPv6 with traffic class 0 and flow label 0x12345: its first 4 bytes read as ports 24577 and 9029. */
function ipv6(next: number, body: number[]): Uint8Array {
  return new Uint8Array([0x60, 0x01, 0x23, 0x45, body.length >> 8, body.length & 255, next, 64, ...SRC6, ...DST6, ...body]);
}
const frag6 = (inner: number, offset8: number, more: boolean): number[] => [inner, 0, (offset8 << 3) >> 8, ((offset8 << 3) & 0xf8) | (more ? 1 : 0), 0, 0, 0xab, 0xcd];

/** Packets at the boundaries of each load: later, first and whole, 0 to 4 bytes and more of transport header. */
function packets(): { name: string; family: 4 | 6; ip: Uint8Array }[] {
  const out: { name: string; family: 4 | 6; ip: Uint8Array }[] = [];
  // ICMP, ESP and AH headers, whole and cut short (type 17 code 17, SPI 0x11112222, AH SPI 0).
  for (const n of [0, 4, 7, 8, 11, 12, 20]) {
    const body = PORTS.slice(0, n);
    for (const [name, p4, p6] of [['icmp', 1, 58], ['esp', 50, 50], ['ah', 51, 51]] as const) {
      out.push({ name: `ipv4 ${name} later fragment, ${n} bytes`, family: 4, ip: ipv4(p4, 0x0002, body) });
      out.push({ name: `ipv4 ${name} whole, ${n} bytes`, family: 4, ip: ipv4(p4, 0, body) });
      out.push({ name: `ipv6 ${name} later fragment, ${n} bytes`, family: 6, ip: ipv6(44, [...frag6(p6, 2, false), ...body]) });
      out.push({ name: `ipv6 ${name} whole, ${n} bytes`, family: 6, ip: ipv6(p6, body) });
    }
  }
  // Each length a load or a match needs, and one byte less: 2 and 4 (nft), 4 (multiport), 8 (udp), 20 (tcp).
  for (const n of [0, 1, 2, 3, 4, 7, 8, 19, 20]) {
    const body = PORTS.slice(0, n);
    out.push({ name: `ipv4 later fragment, ${n} bytes`, family: 4, ip: ipv4(17, 0x0001, body) });
    out.push({ name: `ipv4 first fragment, ${n} bytes`, family: 4, ip: ipv4(17, 0x2000, body) });
    out.push({ name: `ipv4 whole, ${n} bytes`, family: 4, ip: ipv4(n === 20 ? 6 : 17, 0, body) });
    out.push({ name: `ipv6 later fragment, ${n} bytes`, family: 6, ip: ipv6(44, [...frag6(17, 1, false), ...body]) });
    out.push({ name: `ipv6 first fragment, ${n} bytes`, family: 6, ip: ipv6(44, [...frag6(17, 0, true), ...body]) });
    out.push({ name: `ipv6 whole, ${n} bytes`, family: 6, ip: ipv6(n === 20 ? 6 : 17, body) });
    if (n >= 4) {
      out.push({ name: `ipv4 tcp whole, ${n} bytes`, family: 4, ip: ipv4(6, 0, body) });
      out.push({ name: `ipv6 tcp first fragment, ${n} bytes`, family: 6, ip: ipv6(44, [...frag6(6, 0, true), ...body]) });
    }
  }
  out.push({ name: 'ipv6 later tcp fragment behind destination options', family: 6, ip: ipv6(60, [44, 0, 1, 4, 0, 0, 0, 0, ...frag6(6, 3, true), ...PORTS]) });
  out.push({ name: 'ipv4 later tcp fragment at offset 1', family: 4, ip: ipv4(6, 0x0001, PORTS) });
  return out;
}

const header = (backend: Backend, family: 4 | 6): string =>
  `# Generated by ${family === 4 ? 'iptables' : 'ip6tables'}-${backend}-save v1.8.9 (${backend === 'nft' ? 'nf_tables' : 'legacy'}) on Mon Nov 30 03:00:00 2026\n`;
const table = (backend: Backend, family: 4 | 6, lines: string[]): string =>
  `${header(backend, family)}*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${lines.join('\n')}\nCOMMIT\n`;

/** nfsieve on one rule: 'match', 'no' or 'drop' (its hotdrop). */
function nfsieve(backend: Backend, family: 4 | 6, rule: string, ip: Uint8Array): 'match' | 'no' | 'drop' {
  const policy = importIptables(table(backend, family, [`-A INPUT ${rule} -j ACCEPT`]), 'rule', {});
  const r = new Classifier(compile(policy, { analyse: false })).classify(ip);
  if (r.index < 0) return 'no';
  return policy.rules[r.index].action.type === 'drop' ? 'drop' : 'match';
}

const tool = (backend: Backend, family: 4 | 6): string => `${family === 4 ? 'iptables' : 'ip6tables'}-${backend}`;

function counters(backend: Backend, family: 4 | 6): Map<string, number> {
  const gw = links.get(backend)![0];
  const out = sh([tool(backend, family), '-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n'], { ns: gw.ns });
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const c = /\/\* (R\d+|END) \*\//.exec(line);
    if (c) m.set(c[1], Number(line.trim().split(/\s+/)[0]));
  }
  return m;
}

before(() => {
  if (skip) return;
  lab = new Lab(`nfkc${process.pid % 10000}`);
  // One gateway namespace per backend: a packet one backend drops must not hide it from the other.
  for (const [k, backend] of (['nft', 'legacy'] as const).entries()) {
    const [gw, sender] = lab.connect(`gw${backend}`, `sndr${backend}`, 43 + k);
    links.set(backend, [gw, sender]);
    for (const family of [4, 6] as const) {
      // Only our packets: the sender's own IPv6 (router and multicast listener messages) would count too.
      const from = ['-i', gw.ifname, '-s', family === 4 ? SRC4.join('.') : 'fd00:202::7'];
      const add = (words: string[]): string => sh([tool(backend, family), '-t', 'raw', '-A', 'PREROUTING', ...from, ...words], { ns: gw.ns });
      rules(backend, family).forEach((r, i) => add([...r.split(' '), '-m', 'comment', '--comment', `R${i}`]));
      add(['-m', 'comment', '--comment', 'END']);
    }
  }
});

after(() => lab?.cleanup());

/** Every packet through one backend's rules: the kernel's counters against nfsieve's import of each rule. */
function compare(backend: Backend): { compared: number; mismatches: string[] } {
  const [gw, sender] = links.get(backend)!;
  const mac = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
  const mismatches: string[] = [];
  let compared = 0;
  for (const p of packets()) {
    const list = rules(backend, p.family);
    const beforeCounts = counters(backend, p.family);
    const frame = new Uint8Array([...mac(gw.mac), ...mac(sender.mac), ...(p.family === 4 ? [8, 0] : [0x86, 0xdd]), ...p.ip]);
    assert.equal(lab.send(sender, [frame]), 1);
    const afterCounts = counters(backend, p.family);
    const hit = (k: string): boolean => afterCounts.get(k)! > beforeCounts.get(k)!;
    // Rule by rule up to the first drop, which hides the rest (then END must not count).
    let dropped = false;
    for (let i = 0; i < list.length && !dropped; i++) {
      const ours = nfsieve(backend, p.family, list[i], p.ip);
      if (ours === 'drop') {
        dropped = true;
        if (hit('END')) mismatches.push(`${p.name}: R${i} ${list[i]}: nfsieve drops, the kernel went on (${hex(p.ip)})`);
        compared++;
        continue;
      }
      if ((ours === 'match') !== hit(`R${i}`)) mismatches.push(`${p.name}: R${i} ${list[i]}: kernel ${hit(`R${i}`) ? 'matched' : 'did not match'}, nfsieve ${ours} (${hex(p.ip)})`);
      compared++;
    }
    if (!dropped && !hit('END')) mismatches.push(`${p.name}: the kernel dropped it or never saw it; nfsieve kept it (${hex(p.ip)})`);
  }
  return { compared, mismatches };
}

test('iptables-nft port loads (and its compat matches) decide every fragment and short header as the kernel does', { skip }, () => {
  const { compared, mismatches } = compare('nft');
  assert.ok(compared > 1000, `compared ${compared} rule decisions`);
  assert.deepEqual(mismatches, []);
});

test('iptables-legacy -f and xt matches decide every fragment and short header as the kernel does', { skip }, () => {
  const { compared, mismatches } = compare('legacy');
  assert.ok(compared > 500, `compared ${compared} rule decisions`);
  assert.deepEqual(mismatches, []);
});
