/**
 * `nfsieve demo` (root): a small IPsec lab in network namespaces. A gateway,
 * a known peer and an unknown peer joined by veth pairs; the gateway's
 * iptables send what examples/freeswan-gateway.yaml inspects to NFQUEUE 0,
 * where `nfsieve run` classifies it; both peers send IKE, NAT-T, ESP, ICMP and
 * traceroute traffic; live per-rule counters are shown. Everything is removed
 * on exit, Ctrl-C included.
 */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { loadPolicyFile } from '../policy/parse';
import { hookCommands } from './hook';
import { ParsedArgs, intFlag } from './args';
import { Output, onJsonLines } from './output';

export const DEMO_FLAGS = { duration: 'string', json: 'boolean' } as const;

const PKG = path.resolve(__dirname, '..', '..');
const PREFIX = 'nfsieve-demo';

function sh(args: string[], ns?: string): { ok: boolean; out: string; err: string } {
  const full = ns ? ['ip', 'netns', 'exec', ns, ...args] : args;
  const r = spawnSync(full[0], full.slice(1), { encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout ?? '', err: r.stderr ?? (r.error ? String(r.error) : '') };
}

function must(args: string[], ns?: string): string {
  const r = sh(args, ns);
  if (!r.ok) throw new Error(`${args.join(' ')}: ${r.err.trim()}`);
  return r.out;
}

interface End { ns: string; ifname: string; mac: string; ip: string }

const mac = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
const ip4 = (s: string): number[] => s.split('.').map(Number);

function ipv4(src: End, dst: End, proto: number, body: number[]): number[] {
  const total = 20 + body.length;
  const h = [0x45, 0, total >> 8, total & 255, 0, 1, 0, 0, 64, proto, 0, 0, ...ip4(src.ip), ...ip4(dst.ip)];
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (h[i] << 8) | h[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  h[10] = (~sum >> 8) & 255; h[11] = ~sum & 255;
  return [...mac(dst.mac), ...mac(src.mac), 0x08, 0x00, ...h, ...body];
}

const udp = (sport: number, dport: number, payload: number[]): number[] => [sport >> 8, sport & 255, dport >> 8, dport & 255, (8 + payload.length) >> 8, (8 + payload.length) & 255, 0, 0, ...payload];

function ikeHeader(exchange: number, flags: number): number[] {
  const h = new Array<number>(28).fill(0);
  for (let i = 0; i < 8; i++) h[i] = 0x10 + i;
  h[16] = 33; h[17] = 0x20; h[18] = exchange; h[19] = flags; h[27] = 28;
  return h;
}

/** The traffic one peer sends in one round. */
function traffic(from: End, to: End): string[] {
  const frames = [
    ipv4(from, to, 17, udp(500, 500, ikeHeader(34, 0x08))),                    // IKE_SA_INIT
    ipv4(from, to, 17, udp(4500, 4500, [0, 0, 0, 0, ...ikeHeader(35, 0x08)])),  // IKE_AUTH behind the non-ESP marker
    ipv4(from, to, 17, udp(4500, 4500, [0xc0, 0xff, 0xee, 0x01, 0, 0, 0, 1, ...new Array(16).fill(0)])), // ESP-in-UDP
    ipv4(from, to, 17, udp(4500, 4500, [0xff])),                               // NAT-T keepalive
    ipv4(from, to, 50, [0xc0, 0xff, 0xee, 0x02, 0, 0, 0, 1, ...new Array(24).fill(0)]), // ESP
    ipv4(from, to, 1, [8, 0, 0, 0, 0, 1, 0, 1]),                               // echo request
    ipv4(from, to, 1, [3, 4, 0, 0, 0, 0, 5, 0xdc]),                            // fragmentation needed
    ipv4(from, to, 1, [5, 1, 0, 0, 10, 0, 0, 1]),                              // redirect: dropped
    ipv4(from, to, 17, udp(40000, 33434, [0])),                                // traceroute
  ];
  return frames.map((f) => Buffer.from(f).toString('hex'));
}

function sendFrom(end: End, frames: string[], repeat: number): void {
  const script = `require(${JSON.stringify(path.join(PKG, 'dist', 'native.js'))}).native().sendFrames(${JSON.stringify(end.ifname)}, ${JSON.stringify(frames)}.map((h) => Buffer.from(h, 'hex')), ${repeat})`;
  must([process.execPath, '-e', script], end.ns);
}

export async function demo(args: ParsedArgs, out: Output): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('nfsieve demo needs root: it builds network namespaces and iptables rules.\nWithout root, see the classifier at work on captures and rule sets:\n  nfsieve classify examples/freeswan-gateway.yaml --pcap FILE\n  nfsieve bench examples/freeswan-gateway.yaml\n');
    return 1;
  }
  for (const tool of [['ip', '-V'], ['iptables', '--version']]) {
    if (!sh(tool).ok) {
      process.stderr.write(`nfsieve demo needs ${tool[0]} (apt-get install -y iproute2 iptables)\n`);
      return 1;
    }
  }
  const duration = intFlag(args, 'duration', 1, 86400) ?? 10;
  const json = args.flags.has('json');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-demo-'));
  const namespaces = ['gw', 'peer', 'stranger'].map((n) => `${PREFIX}-${n}`);
  let runner: ChildProcess | null = null;
  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    if (runner && runner.exitCode === null) runner.kill('SIGTERM');
    for (const ns of namespaces) sh(['ip', 'netns', 'del', ns]);
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = (): void => { cleanup(); process.exit(130); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const ns of namespaces) {
      sh(['ip', 'netns', 'del', ns]);
      must(['ip', 'netns', 'add', ns]);
      must(['ip', 'link', 'set', 'lo', 'up'], ns);
      must(['sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0'], ns);
    }
    const [gwNs, peerNs, strangerNs] = namespaces;
    const link = (other: string, n: number, name: string): [End, End] => {
      const a: End = { ns: gwNs, ifname: `gw-${name}`, mac: `02:00:00:00:0${n}:01`, ip: `10.250.${n}.1` };
      const b: End = { ns: other, ifname: `${name}-gw`, mac: `02:00:00:00:0${n}:02`, ip: `10.250.${n}.2` };
      must(['ip', 'link', 'add', a.ifname, 'netns', a.ns, 'address', a.mac, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.ns, 'address', b.mac]);
      for (const e of [a, b]) {
        must(['ip', 'addr', 'add', `${e.ip}/24`, 'dev', e.ifname], e.ns);
        must(['ip', 'link', 'set', e.ifname, 'up'], e.ns);
        must(['sysctl', '-qw', `net.ipv4.conf.${e.ifname}.rp_filter=0`], e.ns);
      }
      return [a, b];
    };
    const [gwPeer, peer] = link(peerNs, 1, 'peer');
    const [gwStranger, stranger] = link(strangerNs, 2, 'strgr');

    // The example policy, with the known peer as the one gateway.
    const example = path.join(PKG, 'examples', 'freeswan-gateway.yaml');
    const doc = parseDocument(fs.readFileSync(example, 'utf8'));
    doc.setIn(['sets', 'gateways', 'elements'], [peer.ip]);
    const policyFile = path.join(tmp, 'freeswan-gateway.yaml');
    fs.writeFileSync(policyFile, doc.toString());
    for (const cmd of hookCommands(loadPolicyFile(policyFile), [0])) {
      if (cmd.startsWith('ip6tables')) continue;
      must(cmd.split(' '), gwNs);
    }
    runner = spawn('ip', ['netns', 'exec', gwNs, process.execPath, path.join(PKG, 'bin', 'nfsieve.js'), 'run', policyFile, '--queue', '0', '--json', '--stats-every', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    type Stats = { rules: { rule: string; line: number | null; packets: number }[]; queues: { received: number; accepted: number; dropped: number }[] };
    const seen: { latest: Stats | null } = { latest: null };
    let attached = false;
    onJsonLines(runner.stdout!, (o, line) => {
      if (o.event === 'note' && String(o.message).startsWith('attached')) attached = true;
      if (o.event === 'stats' || o.event === 'final') seen.latest = o as unknown as Stats;
      if (json) out.line(line), out.flush();
    });
    for (let t = 0; !attached && t < 100; t++) await new Promise((r) => setTimeout(r, 100));
    if (!attached) throw new Error('nfsieve run did not attach in the gateway namespace');
    const say = (s: string): void => { if (!json) { out.line(s); out.flush(); } };
    say(`lab: gateway ${gwPeer.ip}/${gwStranger.ip}, known peer ${peer.ip}, unknown peer ${stranger.ip}; queue 0; ${duration} s of traffic (Ctrl-C stops)`);
    const tty = process.stdout.isTTY && !json;
    for (let s = 0; s < duration; s++) {
      sendFrom(peer, traffic(peer, gwPeer), 20);
      sendFrom(stranger, traffic(stranger, gwStranger), 20);
      await new Promise((r) => setTimeout(r, 1000));
      const l = seen.latest;
      if (l && !json) {
        const q = l.queues[0];
        const lines = [`t=${s + 1}s  received ${q.received}  accepted ${q.accepted}  dropped ${q.dropped}`, ...l.rules.map((r) => `  ${String(r.rule).padEnd(20)} ${String(r.packets).padStart(8)}`)];
        if (tty) process.stdout.write('\x1b[2J\x1b[H');
        say(lines.join('\n'));
      }
    }
    runner.kill('SIGTERM');
    // It may have exited already: a listener added after 'exit' never fires.
    if (runner.exitCode === null && runner.signalCode === null) await new Promise((r) => runner!.once('exit', r));
    say('done: the lab is removed.');
    return 0;
  } finally {
    cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
