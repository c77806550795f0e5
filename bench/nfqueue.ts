/**
 * NFQUEUE on a veth pair, measured as loss and CPU per packet at fixed offered
 * rates (the sender saturates before the consumer on a small machine, so
 * packets per second no longer tell consumers apart):
 *
 * - `nfsieve run` (FreeS/WAN example policy) on one queue, on two queues
 *   (`--queue-balance`, 64 source addresses), each with its default wake-up
 *   coalescing and with `--coalesce-us 0`, and the minimal C consumer
 *   (bench/peers/nfq_accept.c, libnetfilter_queue, one verdict per packet);
 *   IKE from 64 known peers, all accepted. Loss: what entered the NFQUEUE
 *   rule and never arrived at filter INPUT behind it. CPU: utime + stime of
 *   the consumer process (/proc/PID/stat, all threads) over the window,
 *   divided by the packets that arrived in it; most of it is the kernel's
 *   (receive, verdict, the reinjected packet's path), charged to the consumer.
 * - offload: ESP from the known peers at the sender's limit through `nfsieve
 *   hook` + `run`, without and with `--offload` on both: whole-machine CPU
 *   (/proc/stat, all CPUs, the sender included) per arrived packet.
 *
 * - latency: the packets of one of the 64 sources pass on to
 *   bench/peers/latency_probe.c, which reports p50 / p99 of the time from the
 *   frame's arrival on the veth (SO_TIMESTAMPNS) to its reading it.
 *
 * Traffic comes from bench/peers/paced_send.c (one socket, frames sent as they
 * fall due). Needs root, iproute2, iptables, ipset, a C compiler,
 * libnetfilter-queue-dev.
 * Run alone: `node build-test/bench/nfqueue.js` (NFSIEVE_BENCH_PERF=FILE also
 * records `perf record -g` of nfsieve run at the sender's limit into FILE-one-0,
 * or `perf stat` of it when FILE ends in .stat; NFSIEVE_BENCH_PERF_AT=two:50000,... picks other runs;
 * NFSIEVE_BENCH_ONLY, _RATES, _COALESCE, _COALESCE2 run pieces: see below).
 */
import { spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, Link, labAvailable, sh, udpFrame, espFrame, ruleCount } from '../test/support/netns';
import { writePcap } from '../src/capture/pcap';
import { markdownTable, Row } from './common';

const ROOT = path.resolve(__dirname, '..', '..');
const RAMP_MS = 1000;
const WINDOW_MS = 3000;
/** Offered rates (packets/s); null is the sender's limit (no pacing). NFSIEVE_BENCH_RATES=50000,0 picks some (0: the limit). */
export const RATES: (number | null)[] = process.env.NFSIEVE_BENCH_RATES
  ? process.env.NFSIEVE_BENCH_RATES.split(',').map((r) => (Number(r) > 0 ? Number(r) : null))
  : [50000, 100000, 200000, null];
const ONE_QUEUE = 'nfsieve run, 1 queue';
const C_CONSUMER = 'C consumer (libnetfilter_queue)';
const CLK_TCK = 100;
/** Offload: a rate both paths carry, and the sender's limit. */
const OFFLOAD_RATES: (number | null)[] = [80000, null];
const Q = 5;
const SOURCES = 64;

interface Setup { lab: Lab; gw: Link; peer: Link; policy: string; tmp: string; sender: string; probe: string | null }

/** The source whose packets the latency probe hears (one of the SOURCES): 1/SOURCES of the traffic is delivered to it. */
const probeSource = (s: Setup): string => `${s.peer.address.replace(/\.\d+$/, '')}.100`;

/** Which consumers run (NFSIEVE_BENCH_ONLY=key,key: the kinds' keys below, and 'offload'); all by default. */
const only = (key: string): boolean => !process.env.NFSIEVE_BENCH_ONLY || process.env.NFSIEVE_BENCH_ONLY.split(',').includes(key);

/** utime + stime of a process (all its threads), in seconds. */
function processCpu(pid: number): { user: number; sys: number } {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK };
}

/** Busy seconds of the whole machine (all CPUs: everything but idle and iowait). */
function machineBusy(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f.slice(0, 8).reduce((a, b) => a + b, 0) - f[3] - f[4]) / CLK_TCK;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Start the paced sender (bench/peers/paced_send.c; rate null: unpaced) for longer than a window. */
function startSender(s: Setup, frames: Uint8Array[], rate: number | null): ChildProcess {
  const file = path.join(s.tmp, `frames-${frames.length}-${Date.now()}.pcap`);
  fs.writeFileSync(file, writePcap(frames.map((data) => ({ data })), 1));
  const seconds = (RAMP_MS + WINDOW_MS) / 1000 + 4;
  return s.lab.spawn(s.peer.ns, [s.sender, s.peer.ifname, file, String(rate ?? 0), String(seconds)]);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([done, sleep(3000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export interface Latency { count: number; p50: number; p99: number; max: number }
export interface Measure { entered: number; lossPct: number; userUs: number; sysUs: number; machineUs: number; senderUs: number; queueDropped: number; userDropped: number; latency: Latency | null }

/** Start the latency probe (bench/peers/latency_probe.c) on the IKE port of the gateway. */
async function startProbe(s: Setup): Promise<{ child: ChildProcess; result: Promise<Latency | null> } | null> {
  if (!s.probe) return null;
  const child = s.lab.spawn(s.gw.ns, [s.probe, '500']);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const result = new Promise<Latency | null>((resolve) => child.once('exit', () => {
    const line = out.split('\n').find((l) => l.startsWith('{'));
    resolve(line ? JSON.parse(line) as Latency : null);
  }));
  const end = Date.now() + 3000;
  while (!out.includes('ready') && Date.now() < end) await sleep(20);
  return { child, result };
}

/** One window: offered traffic through the queue rule, a consumer process; counters zeroed first. */
async function measure(s: Setup, frames: Uint8Array[], rate: number | null, pid: number, perfFile?: string): Promise<Measure> {
  for (const t of ['mangle', 'filter']) sh(['iptables', '-t', t, '-Z'], { ns: s.gw.ns });
  const entered = (): number => ruleCount(s.gw.ns, 'mangle', 'PREROUTING', 'bench-entered');
  const arrived = (): number => ruleCount(s.gw.ns, 'filter', 'INPUT', 'bench-arrived');
  const probe = await startProbe(s);
  const sender = startSender(s, frames, rate);
  await sleep(RAMP_MS);
  const a0 = arrived(), c0 = processCpu(pid), m0 = machineBusy(), s0 = processCpu(sender.pid!), t0 = Date.now();
  // NFSIEVE_BENCH_PERF=FILE.stat: `perf stat` (task clock, context switches, migrations per thread) instead of a profile.
  const stat = perfFile?.endsWith('.stat');
  const perfArgs = stat ? ['stat', '--per-thread', '-e', 'task-clock,context-switches,cpu-migrations', '-o', perfFile!] : ['record', '-e', 'cpu-clock', '-F', '999', '-g', '-o', perfFile!];
  const perf = perfFile ? spawnSync('perf', [...perfArgs, '-p', String(pid), '--', 'sleep', String(WINDOW_MS / 1000)], { encoding: 'utf8' }) : await sleep(WINDOW_MS);
  void perf;
  const a1 = arrived(), c1 = processCpu(pid), m1 = machineBusy(), s1 = processCpu(sender.pid!), t1 = Date.now();
  await stop(sender);
  await sleep(500);  // the queue drains
  let latency: Latency | null = null;
  if (probe) { await stop(probe.child); latency = await probe.result; }
  const kernel = kernelDrops(s);
  const e = entered(), a = arrived();
  const n = Math.max(1, a1 - a0);
  return {
    entered: Math.round((e * 1000) / (t1 - t0 + RAMP_MS)), // rough rate: the whole send, for the table's "offered" column
    lossPct: e > 0 ? (100 * (e - a)) / e : 0,
    userUs: ((c1.user - c0.user) * 1e6) / n,
    sysUs: ((c1.sys - c0.sys) * 1e6) / n,
    machineUs: ((m1 - m0) * 1e6) / n,
    senderUs: ((s1.user + s1.sys - s0.user - s0.sys) * 1e6) / n,
    ...kernel,
    latency,
  };
}

/** The kernel's drops on the bench's queues (/proc/net/netfilter/nfnetlink_queue: queue full, and failed sends to the consumer's socket). */
function kernelDrops(s: Setup): { queueDropped: number; userDropped: number } {
  const lines = sh(['cat', '/proc/net/netfilter/nfnetlink_queue'], { ns: s.gw.ns }).split('\n').map((l) => l.trim().split(/\s+/).map(Number));
  const ours = lines.filter((f) => f[0] === Q || f[0] === Q + 1);
  return { queueDropped: ours.reduce((n, f) => n + f[5], 0), userDropped: ours.reduce((n, f) => n + f[6], 0) };
}

/** Counted, then dropped: what the packet does after its verdict (a UDP port nobody listens on answers with ICMP) is not the consumer's cost. */
function arrivedRule(s: Setup): void {
  sh(['iptables', '-A', 'INPUT', '-i', s.gw.ifname, '-m', 'comment', '--comment', 'bench-arrived'], { ns: s.gw.ns });
  sh(['iptables', '-A', 'INPUT', '-i', s.gw.ifname, '-s', probeSource(s), '-p', 'udp', '--dport', '500', '-j', 'ACCEPT'], { ns: s.gw.ns });
  sh(['iptables', '-A', 'INPUT', '-i', s.gw.ifname, '-j', 'DROP'], { ns: s.gw.ns });
}

/** The iptables rules around a consumer: count what enters (mangle PREROUTING), queue, count what arrives (filter INPUT). */
function plainRules(s: Setup, target: string[]): void {
  for (const t of ['mangle', 'filter']) sh(['iptables', '-t', t, '-F'], { ns: s.gw.ns });
  sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', s.gw.ifname, '-m', 'comment', '--comment', 'bench-entered'], { ns: s.gw.ns });
  sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', s.gw.ifname, '-p', 'udp', '-j', 'NFQUEUE', ...target], { ns: s.gw.ns });
  arrivedRule(s);
}

/** What each nfsieve run printed (its final counters name the batches). */
const printed = new WeakMap<ChildProcess, () => string>();

/** Packets per receive batch over a stopped run (its final counters), or '-' for another consumer. */
function perBatch(child: ChildProcess): string {
  const line = printed.get(child)?.().split('\n').find((l) => l.includes('"event":"final"'));
  if (!line) return '-';
  const qs = (JSON.parse(line) as { queues: { received: number; batches: number }[] }).queues;
  const batches = qs.reduce((n, q) => n + q.batches, 0);
  return batches > 0 ? (qs.reduce((n, q) => n + q.received, 0) / batches).toFixed(1) : '-';
}

async function startNfsieve(s: Setup, extra: string[]): Promise<ChildProcess> {
  const child = s.lab.spawn(s.gw.ns, [process.execPath, path.join(ROOT, 'bin', 'nfsieve.js'), 'run', s.policy, '--json', '--stats-every', '0', '--no-control', ...extra]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  printed.set(child, () => out);
  const end = Date.now() + 15000;
  while (!out.includes('"attached') && Date.now() < end) await sleep(50);
  if (!out.includes('"attached')) throw new Error(`nfsieve run did not attach: ${out}`);
  return child;
}

function frameSet(s: Setup, esp: boolean): Uint8Array[] {
  const net = s.peer.address.replace(/\.\d+$/, '');
  return Array.from({ length: SOURCES }, (_, i) => {
    const src = `${net}.${100 + i}`;
    if (esp) return espFrame(s.gw.mac, s.peer.mac, src, s.gw.address, 0x1000 + i, 1);
    const ike = new Uint8Array(28);
    ike.set([i & 255, 2, 3, 4, 5, 6, 7, 8], 0);
    ike[17] = 0x20; ike[18] = 34; ike[19] = 0x08; ike[27] = 28;
    return udpFrame(s.gw.mac, s.peer.mac, src, s.gw.address, 500, 500, ike);
  });
}

const us = (x: number): string => x.toFixed(2);
const rateText = (r: number | null): string => (r === null ? "sender's limit" : `${r / 1000}k`);

function row(consumer: string, rate: number | null, m: Measure): Row {
  const lat = m.latency ? `${m.latency.p50.toFixed(0)} / ${m.latency.p99.toFixed(0)}` : '-';
  return { consumer, offered: rateText(rate), 'entered/s': m.entered, 'loss %': m.lossPct.toFixed(2), 'queue full / socket full': `${m.queueDropped} / ${m.userDropped}`, 'user µs/pkt': us(m.userUs), 'sys µs/pkt': us(m.sysUs), 'CPU µs/pkt': us(m.userUs + m.sysUs), 'latency p50 / p99 µs': lat };
}

/** The consumers of the first table, each over every rate. */
async function consumers(s: Setup, peerBin: string | null, perfFile?: string): Promise<Row[]> {
  const rows: Row[] = [];
  const ike = frameSet(s, false);
  const one = ['--queue-num', String(Q)], two = ['--queue-balance', `${Q}:${Q + 1}`];
  const kinds: { key: string; name: string; target: string[]; start: () => Promise<ChildProcess> }[] = [
    { key: 'one', name: ONE_QUEUE, target: one, start: () => startNfsieve(s, ['--queue', String(Q)]) },
    { key: 'one-off', name: 'nfsieve run, 1 queue, --coalesce-us 0', target: one, start: () => startNfsieve(s, ['--queue', String(Q), '--coalesce-us', '0']) },
    { key: 'two', name: 'nfsieve run, 2 queues (--queue-balance)', target: two, start: () => startNfsieve(s, ['--queue', `${Q}:${Q + 1}`]) },
    { key: 'two-off', name: 'nfsieve run, 2 queues, --coalesce-us 0', target: two, start: () => startNfsieve(s, ['--queue', `${Q}:${Q + 1}`, '--coalesce-us', '0']) },
  ];
  // NFSIEVE_BENCH_COALESCE=25,50: 1-queue runs with those windows too (keys c25, c50...); NFSIEVE_BENCH_COALESCE2 likewise for 2 queues (t25...).
  for (const us of (process.env.NFSIEVE_BENCH_COALESCE ?? '').split(',').filter(Boolean)) {
    kinds.push({ key: `c${us}`, name: `nfsieve run, 1 queue, --coalesce-us ${us}`, target: one, start: () => startNfsieve(s, ['--queue', String(Q), '--coalesce-us', us]) });
  }
  for (const us of (process.env.NFSIEVE_BENCH_COALESCE2 ?? '').split(',').filter(Boolean)) {
    kinds.push({ key: `t${us}`, name: `nfsieve run, 2 queues, --coalesce-us ${us}`, target: two, start: () => startNfsieve(s, ['--queue', `${Q}:${Q + 1}`, '--coalesce-us', us]) });
  }
  if (peerBin) kinds.splice(2, 0, { key: 'c', name: C_CONSUMER, target: one, start: async () => { const c = s.lab.spawn(s.gw.ns, [peerBin, String(Q), '256']); await sleep(500); return c; } });
  for (const k of kinds.filter((x) => only(x.key))) {
    for (const rate of RATES) {
      plainRules(s, k.target);
      const child = await k.start();
      // NFSIEVE_BENCH_PERF_AT=KEY:RATE,KEY:RATE profiles those runs instead (RATE 0: the sender's limit), each into FILE-KEY-RATE[.stat].
      const at = (process.env.NFSIEVE_BENCH_PERF_AT ?? 'one:0').split(',');
      const perfOut = perfFile && at.includes(`${k.key}:${rate ?? 0}`) ? perfFile.replace(/(\.stat)?$/, `-${k.key}-${rate ?? 0}$1`) : undefined;
      const r = row(k.name, rate, await measure(s, ike, rate, child.pid!, perfOut));
      await stop(child);
      rows.push({ ...r, 'packets per batch': perBatch(child) });
      process.stderr.write(`  ${JSON.stringify(rows[rows.length - 1])}\n`);
    }
  }
  return rows;
}

/** ESP from the known peers at the sender's limit through hook + run, without and with --offload. */
async function offload(s: Setup): Promise<Row[]> {
  const rows: Row[] = [];
  const esp = frameSet(s, true);
  const bin = path.join(ROOT, 'bin', 'nfsieve.js');
  const at = ['--hook-table', 'mangle', '--hook-chain', 'PREROUTING'];
  for (const rate of OFFLOAD_RATES) {
    for (const off of [false, true]) {
      for (const t of ['mangle', 'filter']) sh(['iptables', '-t', t, '-F'], { ns: s.gw.ns });
      const script = spawnSync(process.execPath, [bin, 'hook', s.policy, '--queue', String(Q), ...at, ...(off ? ['--offload'] : [])], { encoding: 'utf8' });
      if (script.status !== 0) throw new Error(script.stderr);
      sh(['sh', '-e'], { ns: s.gw.ns, input: script.stdout });
      sh(['iptables', '-t', 'mangle', '-I', 'PREROUTING', '1', '-i', s.gw.ifname, '-m', 'comment', '--comment', 'bench-entered'], { ns: s.gw.ns });
      arrivedRule(s);
      const child = await startNfsieve(s, ['--queue', String(Q), ...(off ? ['--offload'] : [])]);
      const m = await measure(s, esp, rate, child.pid!);
      await stop(child);
      const del = spawnSync(process.execPath, [bin, 'hook', '--delete', ...at], { encoding: 'utf8' });
      sh(['sh', '-e'], { ns: s.gw.ns, input: del.stdout });
      rows.push({
        path: off ? 'hook --offload + run --offload (decided in the kernel)' : 'hook + run (every ESP packet queued)', offered: rateText(rate), 'entered/s': m.entered, 'loss %': m.lossPct.toFixed(2),
        'nfsieve µs/pkt': us(m.userUs + m.sysUs), 'sender µs/pkt': us(m.senderUs), 'sender + nfsieve µs/pkt': us(m.senderUs + m.userUs + m.sysUs), 'whole machine µs/pkt': us(m.machineUs),
      });
      process.stderr.write(`  ${JSON.stringify(rows[rows.length - 1])}\n`);
    }
  }
  return rows;
}

export async function benchNfqueue(): Promise<{ rows: Row[]; offload: Row[]; note: string }> {
  const missing = labAvailable();
  if (missing) return { rows: [], offload: [], note: `NFQUEUE not measured: ${missing}.` };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-bench-'));
  const peerBin = path.join(tmp, 'nfq_accept');
  const cc = spawnSync('cc', ['-O2', path.join(ROOT, 'bench', 'peers', 'nfq_accept.c'), '-lnetfilter_queue', '-lnfnetlink', '-o', peerBin], { encoding: 'utf8' });
  const probe = path.join(tmp, 'latency_probe');
  const ccProbe = spawnSync('cc', ['-O2', path.join(ROOT, 'bench', 'peers', 'latency_probe.c'), '-o', probe], { encoding: 'utf8' });
  const sender = path.join(tmp, 'paced_send');
  const ccSender = spawnSync('cc', ['-O2', path.join(ROOT, 'bench', 'peers', 'paced_send.c'), '-o', sender], { encoding: 'utf8' });
  if (ccSender.status !== 0) return { rows: [], offload: [], note: `NFQUEUE not measured: the paced sender did not build (${ccSender.stderr.trim().split('\n')[0]}); apt-get install gcc` };
  const lab = new Lab(`nfsb${process.pid % 10000}`);
  try {
    const [gw, peer] = lab.connect('gw', 'peer', 31);
    const net = peer.address.replace(/\.\d+$/, '');
    const policyText = fs.readFileSync(path.join(ROOT, 'examples', 'freeswan-gateway.yaml'), 'utf8').replace('      - 192.0.2.1          # documentation addresses: replace with your peers', `      - ${net}.0/24`);
    const s: Setup = { lab, gw, peer, policy: lab.file('gateway.yaml', policyText), tmp, sender, probe: ccProbe.status === 0 ? probe : null };
    const load0 = os.loadavg()[0];
    const rows = await consumers(s, cc.status === 0 ? peerBin : null, process.env.NFSIEVE_BENCH_PERF);
    const off = only('offload') ? await offload(s) : [];
    const load1 = os.loadavg()[0];
    const cpu = (name: string, rate: number | null): number => Number(rows.find((r) => r.consumer === name && r.offered === rateText(rate))?.['CPU µs/pkt']);
    const ratios = RATES.filter((r) => cpu(ONE_QUEUE, r) > 0 && cpu(C_CONSUMER, r) > 0).map((r) => `${rateText(r)} ${(cpu(ONE_QUEUE, r) / cpu(C_CONSUMER, r)).toFixed(2)}`).join(', ') || 'not measured in this run';
    const note = [
      `IKE_SA_INIT headers (64-byte UDP payload) from ${SOURCES} source addresses of one veth peer, all accepted by the FreeS/WAN example policy; copy range 256; a paced sender (bench/peers/paced_send.c, one AF_PACKET socket, frames sent as they fall due; "entered/s" is what reached the queue rule, the sender's own losses in the veth backlog excluded), ${RAMP_MS / 1000} s ramp, CPU over a ${WINDOW_MS / 1000} s window; loss counted over the whole send after the queue drained ("queue full / socket full": the kernel's queue_dropped and user_dropped). Arrived packets are counted in filter INPUT and dropped there: otherwise the reinjected packet's delivery to a UDP port nobody listens on, and the ICMP port-unreachable it sends, are charged to the consumer (a quarter of nfsieve's profile when they were); the packets of one source go on to the latency probe (bench/peers/latency_probe.c): "latency" is from the frame's arrival on the veth to the probe reading it. nfsieve runs with its default wake-up coalescing unless the row names --coalesce-us; "packets per batch" is received / batches from its final counters.`,
      cc.status === 0 ? `CPU per packet, nfsieve (1 queue) / C consumer: ${ratios}.` : `C consumer not built (${cc.stderr.trim().split('\n')[0] ?? 'cc failed'}): apt-get install -y libnetfilter-queue-dev`,
      `Load average (1 min) ${load0.toFixed(1)} before, ${load1.toFixed(1)} after (a shared machine: compare rows within one run).`,
    ].join(' ');
    return { rows, offload: off, note };
  } finally {
    lab.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchNfqueue().then((r) => {
    process.stdout.write(`${markdownTable(r.rows)}\n${markdownTable(r.offload)}\n${r.note}\n`);
  }).catch((e) => { process.stderr.write(`${e instanceof Error ? e.stack : e}\n`); process.exitCode = 1; });
}
