/**
 * NFQUEUE under overload and the `run` options the main NFQUEUE test leaves
 * alone, as root in namespaces: a full queue with and without --fail-open,
 * ENOBUFS under a tiny --rcvbuf, two queues with --queue-balance, --copy-range,
 * --no-gso, --reject-mark and IPv6; two queues behind the rules `nfsieve hook`
 * prints, exact over 200 sources, by flow hash and by CPU. Every check counts packets (iptables rule
 * counters against our statistics); every wait ends on a count, never a time.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { spawnSync } from 'node:child_process';
import { Lab, Link, labSkip, sh, ruleCount, udpFrame, espFrame } from './support/netns';
import { startRun as startNfsieveRun, RunHandle } from './support/run';
import { writePcap } from '../src/capture/pcap';
import { ROOT } from './support/compare';

const skip = labSkip();
const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const Q = 9;

let lab: Lab;
let gw: Link, peer: Link;

interface QueueLine { queue: number; received: number; accepted: number; dropped: number; rejected: number; bytes: number; enobufs: number; kernel: { queueDropped: number; userDropped: number; copyRange: number; idSequence: number } }
type Run = RunHandle;

let current: Run | null = null;

async function startRun(policy: string, queue: string, extra: string[] = []): Promise<Run> {
  if (current && current.child.exitCode === null && current.child.signalCode === null) {
    current.child.kill('SIGKILL'); // a failed test left its run behind
    await current.exited;
  }
  current = await startNfsieveRun(lab, gw.ns, [policy, '--queue', queue, '--json', '--stats-every', '0', ...extra]);
  return current;
}

/** Stop the run (the queue settled: see kernelQueue); its final counters, one entry per queue. */
async function stopRun(run: Run): Promise<QueueLine[]> {
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr());
  const final = run.lines.find((l) => l.event === 'final') as { queues: QueueLine[] } | undefined;
  assert.ok(final, `no final counters: ${run.stderr()}`);
  return final.queues;
}

const waitFor = async (fn: () => boolean, ms = 10000): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return fn();
};

/** A fresh hook: mangle PREROUTING from the peer to NFQUEUE (counted there), filter INPUT counters. */
function hook(target: string[], cmd = 'iptables', src: string = peer.address, match: string[] = []): void {
  for (const t of ['mangle', 'filter']) sh([cmd, '-t', t, '-F'], { ns: gw.ns });
  sh([cmd, '-t', 'mangle', '-A', 'PREROUTING', '-i', gw.ifname, ...match, '-j', 'NFQUEUE', ...target], { ns: gw.ns });
  sh([cmd, '-A', 'INPUT', '-s', src, ...match, '-m', 'comment', '--comment', 'arrived'], { ns: gw.ns });
  sh([cmd, '-A', 'INPUT', '-m', 'mark', '--mark', '0x99', '-m', 'comment', '--comment', 'reject-marked'], { ns: gw.ns });
}
const entered = (cmd = 'iptables'): number => ruleCount(gw.ns, 'mangle', 'PREROUTING', 'NFQUEUE', cmd);
const arrived = (cmd = 'iptables'): number => ruleCount(gw.ns, 'filter', 'INPUT', 'arrived', cmd);
const rejectMarked = (): number => ruleCount(gw.ns, 'filter', 'INPUT', 'reject-marked');

/** Queue q's line of /proc/net/netfilter/nfnetlink_queue: [queue, portid, queue_total, copy_mode, copy_range, queue_dropped, user_dropped, id_sequence, 1]. */
function kernelQueue(q: number): number[] {
  const text = sh(['cat', '/proc/net/netfilter/nfnetlink_queue'], { ns: gw.ns });
  return text.split('\n').map((l) => l.trim().split(/\s+/).map(Number)).find((f) => f[0] === q) ?? [];
}

const udp = (sport: number, dport: number, size = 32): Uint8Array => udpFrame(gw.mac, peer.mac, peer.address, gw.address, sport, dport, new Uint8Array(size));

const ACCEPT_ALL = 'default: accept\nrules: []\n';
const DROP_PEER = (): string => `default: accept\nrules:\n  - name: drop-peer\n    src: ${peer.address}\n    action: drop\n`;

before(() => {
  if (skip) return;
  lab = new Lab(`nfov${process.pid % 10000}`);
  [gw, peer] = lab.connect('gw', 'peer', 21);
});

after(() => { if (lab) lab.cleanup(); });

test('a full queue without --fail-open: the kernel drops, and stats report it; nothing else is lost', { skip }, async () => {
  hook(['--queue-num', String(Q)]);
  const run = await startRun(lab.file('accept.yaml', ACCEPT_ALL), String(Q), ['--max-len', '4']);
  const sent = lab.send(peer, [udp(1000, 2000)], 20000);
  // Barrier: every packet that entered the queue was answered or dropped by the kernel.
  const settled = (): boolean => { const k = kernelQueue(Q); return k[2] === 0 && arrived() + k[5] + k[6] >= entered(); };
  assert.ok(await waitFor(settled), `queue did not settle: ${JSON.stringify(kernelQueue(Q))}`);
  const [q] = await stopRun(run);
  assert.ok(entered() > sent * 0.9, `only ${entered()} of ${sent} reached netfilter`);
  assert.ok(q.kernel.queueDropped > 0, `a 4-packet queue under a 20,000-packet flood dropped nothing: ${JSON.stringify(q)}`);
  assert.equal(q.accepted, arrived(), 'every packet we accepted arrived');
  assert.equal(q.received + q.kernel.queueDropped + q.kernel.userDropped, entered(), 'received + kernel drops = queued');
});

test('a full queue with --fail-open: the overflow passes unclassified, counted as queued minus received', { skip }, async () => {
  hook(['--queue-num', String(Q)]);
  // The policy drops the peer: whatever arrives passed the queue without us.
  const run = await startRun(lab.file('drop.yaml', DROP_PEER()), String(Q), ['--max-len', '4', '--fail-open']);
  assert.ok(run.lines.some((l) => String(l.message).includes('fail-open ON')));
  lab.send(peer, [udp(1000, 2000)], 20000);
  const settled = (): boolean => { const k = kernelQueue(Q); return k[2] === 0 && arrived() + k[7] >= entered(); };
  assert.ok(await waitFor(settled), `queue did not settle: ${JSON.stringify(kernelQueue(Q))}`);
  const [q] = await stopRun(run);
  const passed = arrived();
  assert.ok(passed > 0, `no packet failed open: ${JSON.stringify(q)}`);
  assert.equal(q.kernel.queueDropped, 0, 'fail-open: the kernel drops nothing');
  assert.equal(q.dropped, q.received, 'every packet we saw was dropped by the policy');
  assert.equal(q.received + passed, entered(), 'fail-open passes = queued - received');
});

test('a tiny --rcvbuf under a flood: ENOBUFS counted, reports rate-limited with the suppressed count', { skip }, async () => {
  hook(['--queue-num', String(Q)]);
  const run = await startRun(lab.file('accept.yaml', ACCEPT_ALL), String(Q), ['--max-len', '100000', '--rcvbuf', '4096', '--copy-range', '1500']);
  lab.send(peer, [udp(1000, 2000, 1200)], 20000);
  const settled = (): boolean => { const k = kernelQueue(Q); return k[2] === 0 && arrived() + k[5] + k[6] >= entered(); };
  assert.ok(await waitFor(settled), `queue did not settle: ${JSON.stringify(kernelQueue(Q))}`);
  const [q] = await stopRun(run);
  assert.ok(q.enobufs > 0, `no ENOBUFS with a 4 KiB buffer: ${JSON.stringify(q)}`);
  assert.ok(q.kernel.userDropped > 0, 'the kernel counted the packets it could not deliver');
  assert.equal(q.received + q.kernel.userDropped + q.kernel.queueDropped, entered());
  const reports = run.lines.filter((l) => String(l.message).includes('ENOBUFS')).map((l) => String(l.message));
  assert.ok(reports.length >= 1, 'the overrun was reported');
  const told = reports.reduce((n, m) => n + 1 + Number(/\((\d+) more suppressed\)/.exec(m)?.[1] ?? 0), 0);
  assert.ok(told <= q.enobufs, `reports account for ${told} overruns, counted ${q.enobufs}`);
  assert.ok(reports.length < q.enobufs || q.enobufs === 1, 'not one report per overrun');
});

test('run --queue N:M with --queue-balance: both queues classify, nothing lost', { skip }, async () => {
  // The kernel spreads by a hash of the addresses: 64 sources of the peer's subnet.
  hook(['--queue-balance', `${Q}:${Q + 1}`], 'iptables', `${peer.address.replace(/\.\d+$/, '.0')}/24`);
  const run = await startRun(lab.file('accept.yaml', ACCEPT_ALL), `${Q}:${Q + 1}`);
  const frames = Array.from({ length: 64 }, (_, i) => udpFrame(gw.mac, peer.mac, peer.address.replace(/\.\d+$/, `.${100 + i}`), gw.address, 1000, 2000, new Uint8Array(32)));
  const sent = lab.send(peer, frames, 50);
  assert.ok(await waitFor(() => arrived() >= entered() && entered() > 0));
  const qs = await stopRun(run);
  assert.deepEqual(qs.map((q) => q.queue), [Q, Q + 1]);
  assert.ok(entered() > sent * 0.9);
  for (const q of qs) assert.ok(q.received > 0, `queue ${q.queue} saw nothing: the flows were not balanced`);
  assert.equal(qs[0].received + qs[1].received, entered());
  assert.equal(arrived(), entered());
});

/** Send FRAMES from a process pinned to CPU (the kernel receives a veth frame on the sender's CPU); resolves with the count. */
function sendPinned(cpu: number, frames: Uint8Array[], repeat: number): Promise<number> {
  const file = lab.file(`pinned-${cpu}-${Date.now()}.pcap`, '');
  fs.writeFileSync(file, writePcap(frames.map((data) => ({ data })), 1));
  const child = lab.spawn(peer.ns, ['taskset', '-c', String(cpu), process.execPath, path.join(ROOT, 'build-test', 'test', 'support', 'send-frames.js'), peer.ifname, file, String(repeat)]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`sender exited ${code}`)))));
}

for (const fanout of [false, true]) {
  test(`two queues behind hook's ${fanout ? '--queue-balance --queue-cpu-fanout' : '--queue-balance'} rules: 200 sources, every packet of the 100 known passes, every one of the unknown is dropped, both queues used, none lost`, { skip }, async () => {
    const cpus = os.cpus().length;
    const net = peer.address.replace(/\.\d+$/, '');
    const known = Array.from({ length: 100 }, (_, i) => `${net}.${10 + i}`);
    const unknown = Array.from({ length: 100 }, (_, i) => `${net}.${110 + i}`);
    const policy = lab.file('two-queues.yaml', `default: accept\nsets:\n  gateways:\n    elements: [${known.join(', ')}]\nrules:\n` +
      '  - {name: ike-known, src: "@gateways", proto: udp, dport: [500, 4500], action: accept}\n  - {name: esp-known, src: "@gateways", proto: esp, action: accept}\n' +
      '  - {name: ike-unknown, proto: udp, dport: [500, 4500], action: drop}\n  - {name: esp-unknown, proto: esp, action: drop}\n');
    for (const t of ['mangle', 'filter']) sh(['iptables', '-t', t, '-F'], { ns: gw.ns });
    const hookArgs = [policy, '--queue', `${Q}:${Q + 1}`, '--hook-table', 'mangle', '--hook-chain', 'PREROUTING', ...(fanout ? ['--cpu-fanout'] : [])];
    const script = spawnSync(process.execPath, [BIN, 'hook', ...hookArgs], { encoding: 'utf8' });
    assert.equal(script.status, 0, script.stderr);
    assert.ok(script.stdout.includes(`--queue-balance ${Q}:${Q + 1}${fanout ? ' --queue-cpu-fanout' : ''}`), script.stdout);
    sh(['sh', '-e'], { ns: gw.ns, input: script.stdout });
    for (const [range, what] of [[`${known[0]}-${known[99]}`, 'known'], [`${unknown[0]}-${unknown[99]}`, 'unknown']]) {
      // Counted in front of the hook's jump: what reached netfilter (the veth backlog may drop some before).
      sh(['iptables', '-t', 'mangle', '-I', 'PREROUTING', '1', '-m', 'iprange', '--src-range', range, '-m', 'comment', '--comment', `entered-${what}`], { ns: gw.ns });
    }
    sh(['iptables', '-A', 'INPUT', '-m', 'iprange', '--src-range', `${known[0]}-${known[99]}`, '-m', 'comment', '--comment', 'arrived-known'], { ns: gw.ns });
    sh(['iptables', '-A', 'INPUT', '-m', 'iprange', '--src-range', `${unknown[0]}-${unknown[99]}`, '-m', 'comment', '--comment', 'arrived-unknown'], { ns: gw.ns });
    const queuedCount = (): number => sh(['iptables', '-t', 'mangle', '-L', 'NFSIEVE', '-v', '-x', '-n'], { ns: gw.ns }).split('\n').filter((l) => l.includes('NFQUEUE')).reduce((n, l) => n + Number(l.trim().split(/\s+/)[0]), 0);
    const run = await startRun(policy, `${Q}:${Q + 1}`);
    try {
      const frames = [...known, ...unknown].flatMap((src, i) => [
        udpFrame(gw.mac, peer.mac, src, gw.address, 500, 500, new Uint8Array(28)),
        espFrame(gw.mac, peer.mac, src, gw.address, 0x1000 + i, 1),
      ]);
      // Two senders on two CPUs (one when there is only one): --queue-cpu-fanout picks the queue by CPU.
      const sent = (await Promise.all([0, 1].slice(0, Math.min(2, cpus)).map((cpu) => sendPinned(cpu, frames, 10)))).reduce((a, b) => a + b, 0);
      const arrivedKnown = (): number => ruleCount(gw.ns, 'filter', 'INPUT', 'arrived-known');
      const enteredKnown = (): number => ruleCount(gw.ns, 'mangle', 'PREROUTING', 'entered-known');
      const enteredUnknown = ruleCount(gw.ns, 'mangle', 'PREROUTING', 'entered-unknown');
      // Every queued packet has had its verdict once the queues are empty and every known one that entered arrived.
      assert.ok(await waitFor(() => kernelQueue(Q)[2] === 0 && kernelQueue(Q + 1)[2] === 0 && arrivedKnown() >= enteredKnown(), 20000), `${arrivedKnown()} of ${enteredKnown()} arrived`);
      for (const q of [Q, Q + 1]) assert.deepEqual(kernelQueue(q).slice(5, 7), [0, 0], `queue ${q}: the kernel dropped nothing`);
      const qs = await stopRun(run);
      const entered = queuedCount();
      assert.ok(entered > sent * 0.9, `${entered} of ${sent} reached the queue rules`);
      assert.equal(entered, enteredKnown() + enteredUnknown, 'everything from the 200 sources was queued');
      assert.deepEqual(qs.map((q) => q.queue), [Q, Q + 1]);
      for (const q of qs) assert.ok(q.received > 0, `queue ${q.queue} saw nothing`);
      assert.equal(qs[0].received + qs[1].received, entered, 'every queued packet was received by one of the queues');
      assert.equal(arrivedKnown(), enteredKnown(), 'every packet of the known sources passed');
      assert.equal(ruleCount(gw.ns, 'filter', 'INPUT', 'arrived-unknown'), 0, 'no packet of an unknown source passed');
      assert.equal(qs[0].accepted + qs[1].accepted, enteredKnown());
      assert.equal(qs[0].dropped + qs[1].dropped, enteredUnknown);
    } finally {
      const del = spawnSync(process.execPath, [BIN, 'hook', '--delete', '--hook-table', 'mangle', '--hook-chain', 'PREROUTING'], { encoding: 'utf8' });
      sh(['sh', '-e'], { ns: gw.ns, input: del.stdout });
    }
  });
}

test('--copy-range: the kernel copies that many bytes, ports are still classified, packets leave whole', { skip }, async () => {
  hook(['--queue-num', String(Q)]);
  const policy = `default: accept\nrules:\n  - name: drop-2001\n    proto: udp\n    dport: 2001\n    action: drop\n`;
  const run = await startRun(lab.file('port.yaml', policy), String(Q), ['--copy-range', '48']);
  assert.equal(kernelQueue(Q)[4], 48, 'the copy range the kernel reports');
  lab.send(peer, [udp(1000, 2001, 600), udp(1000, 2000, 600)], 100);
  assert.ok(await waitFor(() => arrived() >= 100 && entered() >= 200));
  const [q] = await stopRun(run);
  assert.equal(q.kernel.copyRange, 48);
  assert.equal(q.received, 200);
  assert.equal(q.dropped, 100);
  assert.equal(arrived(), 100);
  assert.equal(q.bytes, 200 * (28 + 600), 'byte counters use the original length, not the copied part');
});

test('--reject-mark: reject verdicts are accepted with the mark; without it they are dropped', { skip }, async () => {
  hook(['--queue-num', String(Q)]);
  const policy = lab.file('reject.yaml', `default: accept\nrules:\n  - name: reject-2000\n    src: ${peer.address}\n    proto: udp\n    dport: 2000\n    action: reject\n`);
  // 100 rejected, then 10 accepted on the same queue: once those 10 arrived, the 100 had their verdicts.
  const traffic = async (): Promise<void> => {
    lab.send(peer, [udp(1000, 2000)], 100);
    lab.send(peer, [udp(1000, 3000)], 10);
  };
  const marked = await startRun(policy, String(Q), ['--reject-mark', '0x99']);
  await traffic();
  assert.ok(await waitFor(() => arrived() >= 110));
  const [m] = await stopRun(marked);
  assert.equal(m.rejected, 100);
  assert.equal(rejectMarked(), 100, 'rejected packets carry the reject mark to later rules');
  assert.equal(arrived(), 110);
  const plain = await startRun(policy, String(Q));
  await traffic();
  assert.ok(await waitFor(() => arrived() >= 120));
  const [p] = await stopRun(plain);
  assert.equal(p.rejected, 100);
  assert.equal(arrived(), 120, 'without --reject-mark rejected packets are dropped: only the 10 accepted arrived');
  assert.equal(rejectMarked(), 100);
});

/** Ethernet + IPv6 + UDP (checksum 0: netfilter counts before UDP looks at it). */
function udp6(src: string, dst: string, sport: number, dport: number): Uint8Array {
  const mac = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
  const v6 = (a: string): number[] => {
    const [head, tail] = a.split('::');
    const h = head ? head.split(':') : [], t = tail ? tail.split(':') : [];
    const words = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((w) => parseInt(w, 16));
    return words.flatMap((w) => [w >> 8, w & 255]);
  };
  const len = 8 + 16;
  return new Uint8Array([...mac(gw.mac), ...mac(peer.mac), 0x86, 0xdd, 0x60, 0, 0, 0, 0, len, 17, 64, ...v6(src), ...v6(dst),
    sport >> 8, sport & 255, dport >> 8, dport & 255, 0, len, 0, 0, ...new Array(16).fill(0)]);
}

test('IPv6 through NFQUEUE: classified by address and port, dropped and accepted by count', { skip }, async () => {
  const src = 'fd00:200:21::2', dst = 'fd00:200:21::1';
  hook(['--queue-num', String(Q)], 'ip6tables', src, ['-p', 'udp']); // not neighbour discovery
  const policy = `default: accept\nrules:\n  - name: drop-v6-2000\n    src: ${src}\n    proto: udp\n    dport: 2000\n    action: drop\n`;
  const run = await startRun(lab.file('v6.yaml', policy), String(Q));
  lab.send(peer, [udp6(src, dst, 1000, 2000)], 100);
  lab.send(peer, [udp6(src, dst, 1000, 3000)], 10); // barrier: accepted after the dropped ones
  assert.ok(await waitFor(() => arrived('ip6tables') >= 10 && entered('ip6tables') >= 110));
  const [q] = await stopRun(run);
  assert.equal(entered('ip6tables'), 110);
  assert.equal(q.received, 110);
  assert.equal(q.dropped, 100);
  assert.equal(arrived('ip6tables'), 10);
  for (const t of ['mangle', 'filter']) sh(['ip6tables', '-t', t, '-F'], { ns: gw.ns });
});

/** Send `bytes` over TCP from the peer to the gateway; resolves with what the gateway received. */
async function tcpTransfer(bytes: number, port: number): Promise<number> {
  const server = lab.spawn(gw.ns, [process.execPath, '-e', `let n=0;const s=require('net').createServer((c)=>{c.on('data',(d)=>n+=d.length);c.on('end',()=>{process.stdout.write(String(n));s.close();});}).listen(${port},'${gw.address}',()=>process.stdout.write('up\\n'));`]);
  let out = '';
  server.stdout!.on('data', (d) => (out += d));
  const done = new Promise<void>((resolve) => server.on('exit', () => resolve()));
  assert.ok(await waitFor(() => out.startsWith('up')));
  sh([process.execPath, '-e', `const c=require('net').connect(${port},'${gw.address}',()=>{c.end(Buffer.alloc(${bytes}));});`], { ns: peer.ns });
  await done;
  return Number(out.slice(3));
}

test('--no-gso: the kernel segments before queueing; by default GSO super-packets are queued whole', { skip }, async () => {
  hook(['--queue-num', String(Q)]);
  const policy = lab.file('accept.yaml', ACCEPT_ALL);
  const sizes: Record<string, number> = {};
  for (const [name, extra] of [['gso', []], ['no-gso', ['--no-gso']]] as [string, string[]][]) {
    const run = await startRun(policy, String(Q), extra);
    assert.equal(await tcpTransfer(4 << 20, 5001), 4 << 20);
    const [q] = await stopRun(run);
    assert.ok(q.received > 0 && q.accepted === q.received);
    sizes[name] = q.bytes / q.received;
  }
  assert.ok(sizes['no-gso'] <= 1500, `--no-gso: mean queued packet ${sizes['no-gso']} bytes, above the 1500-byte MTU`);
  assert.ok(sizes.gso > 1500, `GSO on: mean queued packet ${sizes.gso} bytes, no super-packet was queued`);
});
