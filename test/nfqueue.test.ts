/**
 * The main job, end to end, as root: namespaces joined by veth pairs, real
 * iptables -j NFQUEUE rules, `nfsieve run` attached in the gateway namespace,
 * crafted IKE, NAT-T and ESP frames from a known and an unknown peer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Lab, Link, labSkip, sh, ruleCount, udpFrame, espFrame } from './support/netns';
import { startRun as startNfsieveRun, RunHandle } from './support/run';
import { ROOT } from './support/compare';

const skip = labSkip();
const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const QUEUE = '7';

let lab: Lab;
let gw1: Link, peer: Link, gw2: Link, stranger: Link;
let gwNs: string;
let policyFile: string;

const policyText = (known: string): string => `
default: accept
sets:
  gateways:
    elements: [${known}]
rules:
  - name: ike-from-gateways
    src: "@gateways"
    proto: udp
    dport: [500, 4500]
    action: {mark: 0x7, then: accept}
  - name: esp-from-gateways
    src: "@gateways"
    proto: esp
    action: accept
  - name: ike-from-unknown
    proto: udp
    dport: [500, 4500]
    action: drop
  - name: esp-from-unknown
    proto: esp
    action: drop
`;

function ikeFrames(from: Link, to: Link): Uint8Array[] {
  const ike = new Uint8Array(28);
  ike.set([1, 2, 3, 4, 5, 6, 7, 8], 0);
  ike[17] = 0x20; ike[18] = 34; ike[19] = 0x08; ike[27] = 28;
  const natt = new Uint8Array([0, 0, 0, 0, ...ike]);
  return [
    udpFrame(to.mac, from.mac, from.address, to.address, 500, 500, ike),
    udpFrame(to.mac, from.mac, from.address, to.address, 4500, 4500, natt),
    udpFrame(to.mac, from.mac, from.address, to.address, 4500, 4500, new Uint8Array([0xff])),
    espFrame(to.mac, from.mac, from.address, to.address, 0x1000, 1),
  ];
}

/** Start `nfsieve run`; resolves once it has attached, with a reader of its JSON lines. */
function startRun(extra: string[] = []): Promise<RunHandle> {
  return startNfsieveRun(lab, gwNs, [policyFile, '--queue', QUEUE, '--json', '--stats-every', '1', ...extra]);
}

const counted = (src: string): number => ruleCount(gwNs, 'filter', 'INPUT', `count-${src}`);
/** Packets of the known peer that reached the NFQUEUE rule (losses before netfilter, in a busy veth backlog, are not ours). */
const queuedFromPeer = (): number => ruleCount(gwNs, 'mangle', 'PREROUTING', gw1.ifname);
const marked = (): number => ruleCount(gwNs, 'filter', 'INPUT', 'count-marked');
const queuedFromStranger = (): number => ruleCount(gwNs, 'mangle', 'PREROUTING', gw2.ifname);
const waitFor = async (fn: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
};

/**
 * Send the unknown peer's frames and return once every one had its verdict:
 * wait until all of them entered the queue, then send frames of the known peer
 * (accepted) into the same queue after them and wait for those to arrive.
 */
async function sendStrangerAndSettle(repeat: number): Promise<void> {
  const queued = queuedFromStranger();
  const sent = lab.send(stranger, ikeFrames(stranger, gw2), repeat);
  await waitFor(() => queuedFromStranger() - queued >= sent);
  assert.equal(queuedFromStranger() - queued, sent, 'the unknown peer\'s frames reached the queue');
  const known = counted(peer.address);
  lab.send(peer, ikeFrames(peer, gw1), 1);
  await waitFor(() => counted(peer.address) - known >= 4);
  assert.equal(counted(peer.address) - known, 4, 'the barrier (known peer, queued after) arrived');
}

before(() => {
  if (skip) return;
  lab = new Lab(`nfsq${process.pid % 10000}`);
  [gw1, peer] = lab.connect('gw', 'peer', 11);
  [gw2, stranger] = lab.connect('gw', 'strngr', 12);
  gwNs = gw1.ns;
  // The hook: everything from the peers goes through the queue (mangle, so
  // that accepted packets go on to the filter table where we count them).
  sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', gw1.ifname, '-j', 'NFQUEUE', '--queue-num', QUEUE, '--queue-bypass'], { ns: gwNs });
  sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', gw2.ifname, '-j', 'NFQUEUE', '--queue-num', QUEUE, '--queue-bypass'], { ns: gwNs });
  for (const l of [peer, stranger]) sh(['iptables', '-A', 'INPUT', '-s', l.address, '-m', 'comment', '--comment', `count-${l.address}`], { ns: gwNs });
  sh(['iptables', '-A', 'INPUT', '-m', 'mark', '--mark', '0x7', '-m', 'comment', '--comment', 'count-marked'], { ns: gwNs });
  policyFile = lab.file('gateway.yaml', policyText(peer.address));
});

after(() => { if (lab) lab.cleanup(); });

test('IKE, NAT-T and ESP from a known gateway arrive; the same from an unknown one do not; marks reach later rules', { skip }, async () => {
  const run = await startRun();
  try {
    const base = { peer: counted(peer.address), stranger: counted(stranger.address), marked: marked() };
    assert.equal(lab.send(peer, ikeFrames(peer, gw1), 50), 200);
    assert.equal(lab.send(stranger, ikeFrames(stranger, gw2), 50), 200);
    await waitFor(() => counted(peer.address) - base.peer >= 200);
    assert.equal(counted(peer.address) - base.peer, 200, `exit ${run.child.exitCode} ${run.child.signalCode} stderr ${run.stderr()} ${JSON.stringify(run.lines.slice(-2))}\n${sh(['nstat', '-az'], { ns: gwNs }).split('\n').filter((l) => /Ip(In|Frag|Reasm)/.test(l)).join('\n')}\n${sh(['iptables-save', '-c'], { ns: gwNs })}`);
    assert.equal(counted(stranger.address) - base.stranger, 0);
    assert.equal(marked() - base.marked, 150); // IKE on 500 and 4500 and keepalives carry the rule's mark
    await waitFor(() => run.lines.some((l) => l.event === 'stats' && (l.rules as { packets: number }[])[2].packets >= 150));
    const last = [...run.lines].reverse().find((l) => l.event === 'stats') as { rules: { rule: string; packets: number }[]; queues: { kernel: { present: boolean } }[] };
    assert.deepEqual(last.rules.map((r) => [r.rule, r.packets]), [['ike-from-gateways', 150], ['esp-from-gateways', 50], ['ike-from-unknown', 150], ['esp-from-unknown', 50], ['default', 0]]);
    assert.equal(last.queues[0].kernel.present, true);
  } finally {
    run.child.kill('SIGTERM');
    await run.exited;
  }
});

test('a second process binding the same queue gets a clear error naming the queue', { skip }, async () => {
  const run = await startRun();
  try {
    const second = sh(['ip', 'netns', 'exec', gwNs, process.execPath, BIN, 'run', policyFile, '--queue', QUEUE], { allowFail: true });
    assert.equal(second, '');
    const r = spawnSync('ip', ['netns', 'exec', gwNs, process.execPath, BIN, 'run', policyFile, '--queue', QUEUE], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /queue 7 is bound by another process \(EPERM\)/);
  } finally {
    run.child.kill('SIGTERM');
    await run.exited;
  }
});

// A deep queue and a large socket buffer: a flood must not overflow the
// kernel's queue (queue_dropped) or our socket (user_dropped) while we check
// that reloads and stops lose nothing; kernel drops are accounted all the same.
const DEEP = ['--max-len', '200000', '--rcvbuf', String(128 << 20)];

function kernelDrops(): number {
  const text = sh(['cat', '/proc/net/netfilter/nfnetlink_queue'], { ns: gwNs });
  const line = text.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[0] === QUEUE);
  return line ? Number(line[5]) + Number(line[6]) : 0;
}

test('SIGHUP reloads under traffic without losing a packet; a bad policy is refused and the old one keeps running', { skip }, async () => {
  const run = await startRun(DEEP);
  try {
    const before = counted(peer.address);
    const beforeQueued = queuedFromPeer();
    const beforeStranger = counted(stranger.address);
    const sending = lab.sendAsync(peer, ikeFrames(peer, gw1), 5000);
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 100));
      run.child.kill('SIGHUP');
    }
    const sent = await sending;
    await waitFor(() => counted(peer.address) - before + kernelDrops() >= queuedFromPeer() - beforeQueued);
    const entered = queuedFromPeer() - beforeQueued;
    assert.ok(entered > sent * 0.9, `only ${entered} of ${sent} packets reached netfilter`);
    assert.equal(kernelDrops(), 0, 'the kernel dropped packets from a full queue or socket');
    assert.equal(counted(peer.address) - before, entered, 'every packet of the known peer that was queued arrived, across reloads');
    await waitFor(() => run.lines.filter((l) => String(l.message ?? '').startsWith('reloaded')).length >= 5);
    assert.ok(run.lines.filter((l) => String(l.message ?? '').startsWith('reloaded')).length >= 5);
    // A broken policy: reported, nothing changes.
    writeFileSync(policyFile, 'default: accept\nrules:\n  - dport: 99999\n    action: drop\n');
    run.child.kill('SIGHUP');
    await waitFor(() => run.lines.some((l) => String(l.message ?? '').includes('refused')));
    assert.ok(run.lines.some((l) => String(l.message ?? '').includes(':3:12: port: 99999 is out of range')), JSON.stringify(run.lines.slice(-3)));
    await sendStrangerAndSettle(10);
    assert.equal(counted(stranger.address), beforeStranger, 'the old policy still drops the unknown peer');
  } finally {
    writeFileSync(policyFile, policyText(peer.address));
    run.child.kill('SIGTERM');
    await run.exited;
  }
});

test('stopping under traffic leaves no packet without a verdict', { skip }, async () => {
  const run = await startRun(DEEP);
  const before = counted(peer.address);
  const beforeQueued = queuedFromPeer();
  const sending = lab.sendAsync(peer, ikeFrames(peer, gw1), 8000);
  // Stop mid-flood: once a few thousand packets went through the queue (a count, not a sleep).
  await waitFor(() => queuedFromPeer() - beforeQueued >= 2000, 15000);
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0);
  const sent = await sending;
  await waitFor(() => counted(peer.address) - before >= queuedFromPeer() - beforeQueued);
  const entered = queuedFromPeer() - beforeQueued;
  assert.ok(entered > sent * 0.9, `only ${entered} of ${sent} packets reached netfilter`);
  // Received before the stop: our verdict; after: --queue-bypass. None lost.
  assert.equal(counted(peer.address) - before, entered);
  const final = run.lines.find((l) => l.event === 'final') as { queues: { received: number }[] };
  assert.ok(final && final.queues[0].received > 0, 'some packets were classified before the stop');
});

test('after kill -9, --queue-bypass lets traffic flow, and a restart attaches again', { skip }, async () => {
  const run = await startRun();
  run.child.kill('SIGKILL');
  await run.exited;
  const before = counted(stranger.address);
  lab.send(stranger, ikeFrames(stranger, gw2), 10);
  await waitFor(() => counted(stranger.address) - before >= 40);
  assert.equal(counted(stranger.address) - before, 40, 'nobody listens: the kernel bypasses the queue');
  const again = await startRun();
  try {
    const mid = counted(stranger.address);
    await sendStrangerAndSettle(10);
    assert.equal(counted(stranger.address), mid, 'attached again: the unknown peer is dropped');
  } finally {
    again.child.kill('SIGTERM');
    await again.exited;
  }
});
