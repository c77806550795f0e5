/**
 * IKE flood shedding end to end, as root: `nfsieve run` with the shipped
 * road-warrior policy in a gateway namespace; a flood of IKE_SA_INIT requests
 * from 1,000 spoofed sources (paced towards 50,000/s) arrives on one link, the
 * known gateway's IKE on another. The flood must be cut to the policy's
 * rates (10/s per source, 1,000/s in all, each with its burst) within 10 %,
 * the known gateway's IKE must pass in full. Counts come from iptables rules
 * around the queues; the flood's duration from when those counters moved.
 * Each link has its own queue, so what the kernel drops when a queue is full
 * (its own counters, in the run's stats) is accounted to the right sender:
 * the flood's stage counters must add up to what entered its queue less those
 * drops, and the known gateway's queue must drop nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, Link, labSkip, sh, ruleCount, udpFrame } from './support/netns';
import { startRun as startNfsieveRun, RunHandle } from './support/run';
import { ROOT } from './support/compare';
import { writePcap } from '../src/capture/pcap';

const skip = labSkip();
/** The known gateway's link and the flood's link each have a queue. */
const QUEUE_PEER = 9, QUEUE_FLOOD = 10;
const SOURCES = 1000;
const ROUNDS = 250; // each source sends this many requests: 250,000 in all

let lab: Lab;
let gw1: Link, peer: Link, gw2: Link, flood: Link;
let gwNs: string;

/** The part of a `--json` stats line this test reads. */
interface Stats {
  rules: { rule: string; packets: number; overLimit: number }[];
  queues: { queue: number; kernel: { queueDropped: number; userDropped: number } }[];
}

function ikeSaInit(spi: number): Uint8Array {
  const ike = new Uint8Array(28);
  new DataView(ike.buffer).setUint32(0, spi);
  ike[16] = 33; ike[17] = 0x20; ike[18] = 34; ike[19] = 0x08; ike[27] = 28; // SA first, IKEv2, IKE_SA_INIT, Initiator; rSPI zero
  return ike;
}

before(() => {
  if (skip) return;
  lab = new Lab(`nflim${process.pid % 10000}`);
  [gw1, peer] = lab.connect('gw', 'peer', 21);
  [gw2, flood] = lab.connect('gw', 'flood', 22);
  gwNs = gw1.ns;
  for (const [l, q] of [[gw1, QUEUE_PEER], [gw2, QUEUE_FLOOD]] as const) sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', l.ifname, '-j', 'NFQUEUE', '--queue-num', String(q)], { ns: gwNs });
  for (const l of [gw1, gw2]) sh(['iptables', '-A', 'INPUT', '-i', l.ifname, '-p', 'udp', '-m', 'comment', '--comment', `passed-${l.ifname}`], { ns: gwNs });
});

after(() => { if (lab) lab.cleanup(); });

function startRun(policyFile: string): Promise<RunHandle> {
  return startNfsieveRun(lab, gwNs, [policyFile, '--queue', `${QUEUE_PEER}:${QUEUE_FLOOD}`, '--json', '--stats-every', '1']);
}

/** Start the paced sender (send-frames with CHUNK and PAUSE_MS); resolves with the count sent. */
function sendPaced(from: Link, frames: Uint8Array[], repeat: number, chunk: number, pauseMs: number): Promise<number> {
  const file = lab.file(`frames-${from.ifname}.pcap`, '');
  fs.writeFileSync(file, writePcap(frames.map((data) => ({ data })), 1));
  const child = lab.spawn(from.ns, [process.execPath, path.join(ROOT, 'build-test', 'test', 'support', 'send-frames.js'), from.ifname, file, String(repeat), String(chunk), String(pauseMs)]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`sender exited ${code}`)))));
}

test('50,000 IKE_SA_INIT/s from 1,000 spoofed sources are shed to 10/s per source and 1,000/s in all; the known gateway passes in full', { skip, timeout: 120_000 }, async () => {
  const text = fs.readFileSync(path.join(ROOT, 'examples', 'road-warrior-gateway.yaml'), 'utf8').replace('198.51.100.1', peer.address);
  const run = await startRun(lab.file('road-warrior.yaml', text));
  try {
    const floodFrames = Array.from({ length: SOURCES }, (_, i) =>
      udpFrame(gw2.mac, flood.mac, `10.77.${i >> 8}.${(i & 255) + 1}`, gw2.address, 500, 500, ikeSaInit(i + 1)));
    const peerFrames = Array.from({ length: 100 }, (_, i) => udpFrame(gw1.mac, peer.mac, peer.address, gw1.address, 500, 500, ikeSaInit(0x10000 + i)));
    const queued = (l: Link): number => ruleCount(gwNs, 'mangle', 'PREROUTING', l.ifname);
    const passed = (l: Link): number => ruleCount(gwNs, 'filter', 'INPUT', `passed-${l.ifname}`);
    const base = { q2: queued(gw2), p2: passed(gw2), q1: queued(gw1), p1: passed(gw1) };
    // The flood's span as the gateway saw it: from the first to the last change of its queue counter.
    let first = 0, last = 0, seen = base.q2, polling = true;
    const poll = (async () => {
      while (polling) {
        const n = queued(gw2);
        const t = performance.now();
        if (n !== seen) { if (!first) first = t; last = t; seen = n; }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // One request per source per round, rounds 1 ms apart: the sender itself
    // takes ~20 ms a round here, so the flood reaches ~47,000/s (logged below).
    const [sentFlood, sentPeer] = await Promise.all([sendPaced(flood, floodFrames, ROUNDS, SOURCES, 1), sendPaced(peer, peerFrames, 20, 100, 50)]);
    await new Promise((r) => setTimeout(r, 500));
    polling = false;
    await poll;
    const span = (last - first) / 1000;
    const q2 = queued(gw2) - base.q2, p2 = passed(gw2) - base.p2;
    const q1 = queued(gw1) - base.q1, p1 = passed(gw1) - base.p1;
    const rate = q2 / span;
    console.log(`# flood: sent ${sentFlood}, reached the queue ${q2} in ${span.toFixed(2)} s (${Math.round(rate)}/s), passed ${p2}; known gateway: sent ${sentPeer}, queued ${q1}, passed ${p1}`);
    assert.equal(sentFlood, SOURCES * ROUNDS);
    assert.equal(p1, q1, 'every IKE packet of the known gateway that reached the queue passed');
    assert.ok(q1 >= sentPeer * 0.99, `the known gateway's packets reached the queue: ${q1} of ${sentPeer}`);
    // Per source: the 10-token burst, then 10/s; the total then holds that to its burst of 1,000 plus 1,000/s.
    const perSource = Math.min(SOURCES * (10 + 10 * span), q2);
    const total = Math.min(1000 + 1000 * span, perSource);
    assert.ok(Math.abs(p2 - total) <= 0.1 * total, `flood passed ${p2}, expected ${Math.round(total)} ± 10 % over ${span.toFixed(2)} s`);
    // The rules' own counters say the same, split by stage: every flood packet
    // that entered its queue, less those the kernel dropped with the queue full.
    const deadline = performance.now() + 30_000;
    let s: Stats | undefined;
    const dropped = (queue: number): number => {
      const k = s!.queues.find((x) => x.queue === queue)!.kernel;
      return k.queueDropped + k.userDropped;
    };
    const staged = (): number => {
      const r = Object.fromEntries(s!.rules.map((x) => [x.rule, x]));
      return r['ike-sa-init-requests'].packets + r['ike-sa-init-shed'].packets + r['ike-sa-init-source-over'].packets;
    };
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        s = [...run.lines].reverse().find((l) => l.event === 'stats') as Stats | undefined;
        if (s && staged() >= q2 - dropped(QUEUE_FLOOD)) resolve();
        else if (performance.now() > deadline) reject(new Error(`the rules' counters never reached the ${q2} flood packets that were queued${s ? ` less the kernel's ${dropped(QUEUE_FLOOD)} drops` : ''}`));
        else setTimeout(check, 200);
      };
      check();
    });
    const kernelDrops = dropped(QUEUE_FLOOD);
    console.log(`# the kernel dropped ${kernelDrops} flood packets (queue ${QUEUE_FLOOD} full) and ${dropped(QUEUE_PEER)} of the known gateway's`);
    assert.equal(dropped(QUEUE_PEER), 0, "the known gateway's queue dropped nothing");
    const r = Object.fromEntries(s!.rules.map((x) => [x.rule, x]));
    console.log(`# rules: ${JSON.stringify(s!.rules.filter((x) => x.packets > 0))}`);
    assert.equal(r['ike-from-gateways'].packets, q1);
    assert.equal(r['ike-sa-init-requests'].packets, p2);
    assert.ok(Math.abs(r['ike-sa-init-per-source'].packets - perSource) <= 0.1 * perSource, `per-source stage passed ${r['ike-sa-init-per-source'].packets}, expected ${Math.round(perSource)} ± 10 %`);
    assert.equal(r['ike-sa-init-per-source'].overLimit, r['ike-sa-init-source-over'].packets);
    assert.equal(r['ike-sa-init-requests'].overLimit, r['ike-sa-init-shed'].packets);
    assert.equal(r['ike-sa-init-per-source'].packets + r['ike-sa-init-source-over'].packets, q2 - kernelDrops);
  } finally {
    run.child.kill('SIGTERM');
    await run.exited;
  }
});
