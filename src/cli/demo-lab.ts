/**
 * The demo's lab: a gateway namespace joined by veth pairs to a known peer
 * and an unknown one; the gateway's iptables send what the policy inspects to
 * NFQUEUE 0 where `nfsieve run` (with its control socket) decides; one frame
 * sender per peer namespace. Everything is removed by cleanup().
 */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { loadPolicyFile } from '../policy/parse';
import { iptablesInstall } from '../hook/render';
import { onJsonLines } from './output';
import { End } from './demo-traffic';

/** Namespaces are named nfsieve-demo<pid>-gw, -peer, -stranger: two demos never share a lab. */
export const LAB_PREFIX = 'nfsieve-demo';
const PKG = path.resolve(__dirname, '..', '..');

function sh(args: string[], ns?: string): { ok: boolean; err: string } {
  const full = ns ? ['ip', 'netns', 'exec', ns, ...args] : args;
  const r = spawnSync(full[0], full.slice(1), { encoding: 'utf8' });
  return { ok: r.status === 0, err: r.stderr ?? (r.error ? String(r.error) : '') };
}

function must(args: string[], ns?: string): void {
  const r = sh(args, ns);
  if (!r.ok) throw new Error(`${args.join(' ')}: ${r.err.trim()}`);
}

/** A sender process in a namespace: send() resolves with the count sent. */
export class Sender {
  private readonly waiting: ((line: string) => void)[] = [];
  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => this.waiting.shift()?.(l));
  }
  send(frames: string[], repeat = 1, pauseMs = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiting.push((l) => (/^\d+$/.test(l) ? resolve(Number(l)) : reject(new Error(`sender: ${l}`))));
      this.child.stdin!.write(JSON.stringify({ frames, repeat, pauseMs }) + '\n');
    });
  }
}

export class DemoLab {
  readonly tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-demo-'));
  readonly namespaces = ['gw', 'peer', 'stranger'].map((n) => `${LAB_PREFIX}${process.pid}-${n}`);
  readonly control = path.join(this.tmp, 'nfsieve.sock');
  private children: ChildProcess[] = [];
  private cleaned = false;

  /** Namespaces and links: [gateway side to the peer, peer, gateway side to the stranger, stranger]. */
// Over 60 lines: the lab's namespaces, links and addresses as one script, in the order ip(8) needs them.
  build(): { gwPeer: End; peer: End; gwStranger: End; stranger: End } {
    for (const ns of this.namespaces) {
      sh(['ip', 'netns', 'del', ns]);
      must(['ip', 'netns', 'add', ns]);
      must(['ip', 'link', 'set', 'lo', 'up'], ns);
      must(['sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0'], ns);
    }
    const [gwPeer, peer] = this.link(this.namespaces[1], 1, 'peer');
    const [gwStranger, stranger] = this.link(this.namespaces[2], 2, 'strgr');
    return { gwPeer, peer, gwStranger, stranger };
  }

  private link(other: string, n: number, name: string): [End, End] {
    const a: End = { ns: this.namespaces[0], ifname: `gw-${name}`, mac: `02:00:00:00:0${n}:01`, ip: `10.250.${n}.1` };
    const b: End = { ns: other, ifname: `${name}-gw`, mac: `02:00:00:00:0${n}:02`, ip: `10.250.${n}.2` };
    must(['ip', 'link', 'add', a.ifname, 'netns', a.ns, 'address', a.mac, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.ns, 'address', b.mac]);
    for (const e of [a, b]) {
      must(['ip', 'addr', 'add', `${e.ip}/24`, 'dev', e.ifname], e.ns);
      must(['ip', 'link', 'set', e.ifname, 'up'], e.ns);
      must(['sysctl', '-qw', `net.ipv4.conf.${e.ifname}.rp_filter=0`], e.ns);
    }
    return [a, b];
  }

  /** Hook the policy's traffic to queue 0 and start `nfsieve run` with its control socket; resolves once attached. */
  async startGateway(policyFile: string, onLine: (o: Record<string, unknown>, line: string) => void): Promise<void> {
    const hook = iptablesInstall(loadPolicyFile(policyFile), { queues: [0], chain: 'INPUT', table: 'filter', name: 'NFSIEVE', bypass: true, cpuFanout: false });
    must(['sh', '-ec', hook.join('\n')], this.namespaces[0]);
    const child = this.spawn(this.namespaces[0], [path.join(PKG, 'bin', 'nfsieve.js'), 'run', policyFile, '--queue', '0', '--json', '--stats-every', '0', '--max-len', '65536', '--control', this.control], 'inherit');
    let attached = false;
    onJsonLines(child.stdout!, (o, line) => {
      if (o.event === 'note' && String(o.message).startsWith('attached')) attached = true;
      onLine(o, line);
    });
    for (let t = 0; !attached && child.exitCode === null && t < 150; t++) await new Promise((r) => setTimeout(r, 100));
    if (!attached) throw new Error('nfsieve run did not attach in the gateway namespace');
    for (let t = 0; !fs.existsSync(this.control) && t < 50; t++) await new Promise((r) => setTimeout(r, 100));
  }

  sender(end: End): Sender {
    return new Sender(this.spawn(end.ns, [path.join(PKG, 'dist', 'cli', 'demo-sender.js'), end.ifname], 'pipe'));
  }

  private spawn(ns: string, args: string[], stderr: 'inherit' | 'pipe'): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { stdio: ['pipe', 'pipe', stderr] });
    this.children.push(child);
    return child;
  }

  /** Stop `nfsieve run` (SIGTERM: it answers what is queued) and the senders, remove the namespaces. */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    const exits = this.children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => new Promise((r) => { c.once('exit', r); c.kill('SIGTERM'); }));
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 5000))]);
    this.cleanupNow();
  }

  /** The synchronous part (a signal handler's). */
  cleanupNow(): void {
    this.cleaned = true;
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const ns of this.namespaces) sh(['ip', 'netns', 'del', ns]);
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
