/**
 * Soak: N minutes of flood through one NFQUEUE queue (root, namespaces) with a
 * policy reload every 10 s and a named-set change every second, while the
 * attached process samples its resident memory, open file descriptors and
 * threads. Reports whether they stay flat after warm-up (within 5 %) and
 * whether any verdict was lost (a packet we received and never answered, or
 * one accepted that did not arrive). Not part of `npm test` or `npm run bench`.
 *
 *   node build-test/bench/soak.js [MINUTES]         (default 10)
 *
 * The attached side is this same file run inside the gateway namespace with
 * `--inner POLICY QUEUE`: it prints one JSON line per sample and a final one.
 */
import * as fs from 'node:fs';
import { ChildProcess } from 'node:child_process';
import { attach } from '../src/queue';
import { compile } from '../src/compile/compile';
import { loadPolicyFile } from '../src/policy/parse';
import { onJsonLines } from '../src/cli/output';
import { Lab, labAvailable, ruleCount, sh, udpFrame } from '../test/support/netns';

const RELOAD_MS = 10_000;
const SET_CHANGE_MS = 1_000;
const SAMPLE_MS = 5_000;
const QUEUE = 11;

interface Sample { t: number; rss: number; fds: number; threads: number; heap: number; received: number }

/**
 * This process's resident set (bytes) and threads, from /proc/self/status;
 * open fds from /proc/self/fd. A full garbage collection first (the inner
 * side runs with --expose-gc), so that the JavaScript heap's own sawtooth
 * does not hide or fake a native leak; the heap's size is reported beside it.
 */
function sampleSelf(): { rss: number; fds: number; threads: number; heap: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const heap = process.memoryUsage().heapUsed;
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: field('VmRSS') * 1024, fds: fs.readdirSync('/proc/self/fd').length, threads: field('Threads'), heap };
}

/** Inside the gateway namespace: attach, reload and change sets on a timer, sample, stop on SIGTERM. */
async function inner(policyFile: string, queue: number): Promise<void> {
  const q = attach(compile(loadPolicyFile(policyFile), { analyse: false }), { queues: [queue], maxLen: 200_000, rcvbuf: 64 << 20 });
  const start = Date.now();
  let reloads = 0, changes = 0, errors = 0;
  q.on('error', () => { errors++; });
  const emit = (o: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };
  const received = (): number => q.stats().queues.reduce((n, s) => n + s.received, 0);
  const timers = [
    setInterval(() => { q.reload(compile(loadPolicyFile(policyFile), { analyse: false })); reloads++; }, RELOAD_MS),
    setInterval(() => {
      const peer = `10.77.${(changes >> 8) & 255}.${changes & 255}`;
      q.addToSet('gateways', peer);
      if (changes >= 100) q.deleteFromSet('gateways', `10.77.${((changes - 100) >> 8) & 255}.${(changes - 100) & 255}`);
      changes++;
    }, SET_CHANGE_MS),
    setInterval(() => emit({ event: 'sample', t: Date.now() - start, ...sampleSelf(), received: received() }), SAMPLE_MS),
  ];
  emit({ event: 'attached' });
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
  for (const t of timers) clearInterval(t);
  await q.close();
  const s = q.stats().queues[0];
  emit({ event: 'final', reloads, changes, errors, received: s.received, accepted: s.accepted, dropped: s.dropped, kernel: s.kernel, enobufs: s.enobufs });
}

/** Largest spread (max / min - 1) of a series. */
const spread = (xs: number[]): number => (xs.length ? Math.max(...xs) / Math.min(...xs) - 1 : 0);

async function outer(minutes: number): Promise<void> {
  const missing = labAvailable();
  if (missing) throw new Error(`soak needs the network lab: ${missing}`);
  const lab = new Lab(`nfsk${process.pid % 10000}`);
  const children: ChildProcess[] = [];
  try {
    const [gw, peer] = lab.connect('gw', 'peer', 41);
    sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', gw.ifname, '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', String(QUEUE)], { ns: gw.ns });
    sh(['iptables', '-A', 'INPUT', '-i', gw.ifname, '-p', 'udp', '-m', 'comment', '--comment', 'arrived'], { ns: gw.ns });
    const policy = lab.file('soak.yaml', `default: accept\nsets:\n  gateways:\n    elements: [${peer.address}]\nrules:\n  - name: ike-from-gateways\n    src: "@gateways"\n    proto: udp\n    dport: [500, 4500]\n    action: accept\n  - name: ike-from-others\n    proto: udp\n    dport: [500, 4500]\n    action: drop\n`);
    const child = lab.spawn(gw.ns, [process.execPath, '--expose-gc', __filename, '--inner', policy, String(QUEUE)]);
    children.push(child);
    const lines: Record<string, unknown>[] = [];
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      onJsonLines(child.stdout!, (o) => { lines.push(o); if (o.event === 'attached') resolve(); });
      child.on('exit', (code) => reject(new Error(`soak side exited ${code}: ${err}`)));
    });
    const frames = Array.from({ length: 64 }, (_, i) => udpFrame(gw.mac, peer.mac, peer.address, gw.address, 500, 500, new Uint8Array([i, 1, 2, 3, 4, 5, 6, 7, ...new Array(20).fill(0)])));
    const end = Date.now() + minutes * 60_000;
    let sent = 0;
    while (Date.now() < end) sent += await lab.sendAsync(peer, frames, 20_000);
    const entered = (): number => ruleCount(gw.ns, 'mangle', 'PREROUTING', 'NFQUEUE');
    const arrived = (): number => ruleCount(gw.ns, 'filter', 'INPUT', 'arrived');
    const settleEnd = Date.now() + 60_000;
    while (arrived() < entered() && Date.now() < settleEnd) await new Promise((r) => setTimeout(r, 200));
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGTERM');
    await exited;
    const samples = lines.filter((l) => l.event === 'sample') as unknown as Sample[];
    const final = lines.find((l) => l.event === 'final') as Record<string, number> & { kernel: { queueDropped: number; userDropped: number } };
    const warm = samples.filter((s) => s.t >= Math.min(60_000, (minutes * 60_000) / 5));
    const kernelDrops = final.kernel.queueDropped + final.kernel.userDropped;
    const report = {
      minutes, sent, entered: entered(), arrived: arrived(), received: final.received, accepted: final.accepted, dropped: final.dropped,
      kernelDrops, enobufs: final.enobufs, reloads: final.reloads, setChanges: final.changes, errors: final.errors,
      ratePerSecond: Math.round(final.received / (minutes * 60)),
      unanswered: entered() - final.received - kernelDrops, acceptedNotArrived: final.accepted - arrived(),
      rssMiB: warm.map((s) => +(s.rss / 2 ** 20).toFixed(1)), heapMiB: warm.map((s) => +(s.heap / 2 ** 20).toFixed(1)), fds: [...new Set(warm.map((s) => s.fds))], threads: [...new Set(warm.map((s) => s.threads))],
      rssSpread: +(spread(warm.map((s) => s.rss)) * 100).toFixed(2), fdSpread: +(spread(warm.map((s) => s.fds)) * 100).toFixed(2), threadSpread: +(spread(warm.map((s) => s.threads)) * 100).toFixed(2),
    };
    const flat = report.rssSpread <= 5 && report.fdSpread <= 5 && report.threadSpread <= 5;
    const lost = report.unanswered !== 0 || report.acceptedNotArrived !== 0;
    process.stdout.write(`${JSON.stringify({ ...report, flat, ok: flat && !lost })}\n`);
    if (!flat || lost) process.exitCode = 1;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    lab.cleanup();
  }
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const main = args[0] === '--inner' ? inner(args[1], Number(args[2])) : outer(Number(args[0] ?? 10));
  main.catch((e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exit(1); });
}
