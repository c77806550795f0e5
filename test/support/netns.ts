/**
 * A network lab for root tests: namespaces joined by veth pairs, with
 * addresses in 10.0.0.0/8 inside those namespaces only, removed afterwards.
 * Traffic is crafted frames sent with AF_PACKET from inside a namespace.
 */
import { spawnSync, spawn, ChildProcess, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writePcap } from '../../src/capture/pcap';
import { ROOT } from './compare';

/** A system tool a root test runs, with the Debian package that installs it. */
export interface Tool { cmd: string[]; pkg: string }
const IP: Tool = { cmd: ['ip', '-V'], pkg: 'iproute2' };
const IPTABLES: Tool = { cmd: ['iptables', '--version'], pkg: 'iptables' };
export const TOOLS = {
  ipset: { cmd: ['ipset', '--version'], pkg: 'ipset' },
  tcpdump: { cmd: ['tcpdump', '--version'], pkg: 'tcpdump' },
  iptablesLegacy: { cmd: ['iptables-legacy', '--version'], pkg: 'iptables' },
  setpriv: { cmd: ['setpriv', '--version'], pkg: 'util-linux' },
} satisfies Record<string, Tool>;

/** The first missing tool, as "X is not installed (apt-get install PKG)", or null. */
export function missingTool(tools: readonly Tool[]): string | null {
  for (const t of tools) {
    const r = spawnSync(t.cmd[0], t.cmd.slice(1), { stdio: 'ignore' });
    if (r.error) return `${t.cmd[0]} is not installed (apt-get install ${t.pkg})`;
  }
  return null;
}

/** Why the network lab cannot run here (root, iproute2, iptables, extra tools), or null. */
export function labAvailable(extra: readonly Tool[] = []): string | null {
  if (process.getuid?.() !== 0) return 'needs root (run the suite as root)';
  const missing = missingTool([IP, IPTABLES, ...extra]);
  if (missing) return missing;
  if (!fs.existsSync('/proc/net/netfilter/nfnetlink_queue')) {
    try { execFileSync('modprobe', ['nfnetlink_queue'], { stdio: 'ignore' }); } catch { /* may be built in */ }
  }
  return null;
}

/** Fail in CI when a prerequisite is missing; skip (with the reason and the package) elsewhere. */
export function labSkip(extra: readonly Tool[] = []): string | false {
  const missing = labAvailable(extra);
  if (missing && process.env.CI === 'true') throw new Error(`root network tests cannot run in CI: ${missing}`);
  return missing ?? false;
}

/** The same rule for a test needing only tools, not the lab. */
export function toolSkip(tools: readonly Tool[]): string | false {
  const missing = missingTool(tools);
  if (missing && process.env.CI === 'true') throw new Error(`cannot run in CI: ${missing}`);
  return missing ?? false;
}

export function sh(args: string[], opts: { ns?: string; allowFail?: boolean; input?: string } = {}): string {
  const full = opts.ns ? ['ip', 'netns', 'exec', opts.ns, ...args] : args;
  const r = spawnSync(full[0], full.slice(1), { encoding: 'utf8', input: opts.input });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${full.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export interface Link { ns: string; ifname: string; mac: string; address: string }

export class Lab {
  readonly namespaces: string[] = [];
  private readonly tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-lab-'));
  private links = 0;
  private children: ChildProcess[] = [];

  constructor(readonly prefix: string) {}

  ns(name: string): string {
    const full = `${this.prefix}-${name}`;
    if (!this.namespaces.includes(full)) {
      sh(['ip', 'netns', 'del', full], { allowFail: true });
      sh(['ip', 'netns', 'add', full]);
      this.namespaces.push(full);
      sh(['ip', 'link', 'set', 'lo', 'up'], { ns: full });
      for (const k of ['all', 'default']) sh(['sysctl', '-qw', `net.ipv4.conf.${k}.rp_filter=0`], { ns: full });
    }
    return full;
  }

  /** A veth pair between two namespaces, addresses a/24 and b/24 (IPv4) plus IPv6 ULA. */
  connect(a: string, b: string, subnet: number): [Link, Link] {
    const n = this.links++;
    const na = this.ns(a), nb = this.ns(b);
    const ia = `${a.slice(0, 6)}${n}a`, ib = `${b.slice(0, 6)}${n}b`;
    const ma = `02:00:00:${subnet.toString(16).padStart(2, '0')}:00:01`, mb = `02:00:00:${subnet.toString(16).padStart(2, '0')}:00:02`;
    sh(['ip', 'link', 'add', ia, 'netns', na, 'address', ma, 'type', 'veth', 'peer', 'name', ib, 'netns', nb, 'address', mb]);
    const ends: [Link, Link] = [
      { ns: na, ifname: ia, mac: ma, address: `10.200.${subnet}.1` },
      { ns: nb, ifname: ib, mac: mb, address: `10.200.${subnet}.2` },
    ];
    for (const e of ends) {
      sh(['ip', 'addr', 'add', `${e.address}/24`, 'dev', e.ifname], { ns: e.ns });
      sh(['ip', '-6', 'addr', 'add', `fd00:200:${subnet}::${e.address.endsWith('.1') ? 1 : 2}/64`, 'dev', e.ifname, 'nodad'], { ns: e.ns });
      sh(['sysctl', '-qw', `net.ipv4.conf.${e.ifname}.rp_filter=0`], { ns: e.ns });
      sh(['ip', 'link', 'set', e.ifname, 'up'], { ns: e.ns });
    }
    return ends;
  }

  /** Send frames from a namespace's interface (a helper process inside the namespace). */
  send(from: Link, frames: Uint8Array[], repeat = 1, pacing?: { chunk: number; pauseMs: number }): number {
    const file = path.join(this.tmp, `frames-${Date.now()}-${Math.random().toString(16).slice(2)}.pcap`);
    fs.writeFileSync(file, writePcap(frames.map((data) => ({ data })), 1));
    const extra = pacing ? [String(pacing.chunk), String(pacing.pauseMs)] : [];
    const out = sh([process.execPath, path.join(ROOT, 'build-test', 'test', 'support', 'send-frames.js'), from.ifname, file, String(repeat), ...extra], { ns: from.ns });
    fs.rmSync(file, { force: true });
    return Number(out.trim());
  }

  /** As send(), without blocking: resolves with the count sent. */
  sendAsync(from: Link, frames: Uint8Array[], repeat = 1, pacing?: { chunk: number; pauseMs: number }): Promise<number> {
    const file = path.join(this.tmp, `frames-${Date.now()}-${Math.random().toString(16).slice(2)}.pcap`);
    fs.writeFileSync(file, writePcap(frames.map((data) => ({ data })), 1));
    const extra = pacing ? [String(pacing.chunk), String(pacing.pauseMs)] : [];
    const child = this.spawn(from.ns, [process.execPath, path.join(ROOT, 'build-test', 'test', 'support', 'send-frames.js'), from.ifname, file, String(repeat), ...extra]);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    return new Promise((resolve, reject) => {
      child.on('exit', (code) => {
        fs.rmSync(file, { force: true });
        if (code === 0) resolve(Number(out.trim())); else reject(new Error(`sender exited with ${code}`));
      });
    });
  }

  /** Start a long-running process inside a namespace; killed at cleanup. */
  spawn(ns: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  file(name: string, text: string): string {
    const f = path.join(this.tmp, name);
    fs.writeFileSync(f, text);
    return f;
  }

  cleanup(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const ns of this.namespaces) sh(['ip', 'netns', 'del', ns], { allowFail: true });
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

/**
 * Seconds a timed set member is given so that a test step, which took up to
 * `slowestMs` so far on this machine, ends well inside its life: three such
 * steps and `spareS` more, never under `leastS`. The sanitized suite runs
 * every process under ASan, two test files at a time, and its steps are
 * several times slower than a plain run's.
 */
export function outliving(slowestMs: number, leastS: number, spareS: number): number {
  return Math.max(leastS, Math.ceil((3 * slowestMs) / 1000) + spareS);
}

/** Packet counter of the first iptables rule whose text contains `needle`. */
export function ruleCount(ns: string, table: string, chain: string, needle: string, cmd = 'iptables'): number {
  const out = sh([cmd, '-t', table, '-L', chain, '-v', '-x', '-n'], { ns });
  const line = out.split('\n').find((l) => l.includes(needle));
  if (!line) throw new Error(`no rule with '${needle}' in ${table} ${chain}:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}

/** Ethernet + IPv4 + UDP frame. */
export function udpFrame(dstMac: string, srcMac: string, src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const ip4 = (s: string): number[] => s.split('.').map(Number);
  const mac = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
  const total = 28 + payload.length;
  const ip = [0x45, 0, total >> 8, total & 255, 0, 1, 0, 0, 64, 17, 0, 0, ...ip4(src), ...ip4(dst)];
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (ip[i] << 8) | ip[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = (~sum >> 8) & 255; ip[11] = ~sum & 255;
  const ulen = 8 + payload.length;
  return new Uint8Array([...mac(dstMac), ...mac(srcMac), 0x08, 0x00, ...ip, sport >> 8, sport & 255, dport >> 8, dport & 255, ulen >> 8, ulen & 255, 0, 0, ...payload]);
}

/** Ethernet + IPv4 + ESP frame. */
export function espFrame(dstMac: string, srcMac: string, src: string, dst: string, spi: number, seq: number): Uint8Array {
  const f = udpFrame(dstMac, srcMac, src, dst, 0, 0, new Uint8Array(24));
  // Rewrite UDP into ESP: protocol 50, then SPI and sequence where the UDP header was.
  const ipStart = 14;
  f[ipStart + 9] = 50;
  f[ipStart + 10] = 0; f[ipStart + 11] = 0;
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (f[ipStart + i] << 8) | f[ipStart + i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  f[ipStart + 10] = (~sum >> 8) & 255; f[ipStart + 11] = ~sum & 255;
  const at = ipStart + 20;
  f.set([(spi >>> 24) & 255, (spi >>> 16) & 255, (spi >>> 8) & 255, spi & 255, (seq >>> 24) & 255, (seq >>> 16) & 255, (seq >>> 8) & 255, seq & 255], at);
  return f;
}
