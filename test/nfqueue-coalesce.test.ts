/**
 * Wake-up coalescing of the queue workers (`run --coalesce-us`, attach's
 * `coalesceUs`): bad values are refused before anything is bound; as root in
 * namespaces, with the largest window a lone packet still gets its verdict,
 * and under a flood of mixed verdicts every packet gets exactly one (counted
 * against iptables rule counters; waits end on counts, never on a time).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Lab, Link, labSkip, sh, ruleCount, udpFrame } from './support/netns';
import { startRun, RunHandle } from './support/run';
import { ROOT } from './support/compare';
import { attach } from '../src/queue';
import { parsePolicyText } from '../src/policy/parse';
import { Queue as WireQueue } from '../src/wire';

const skip = labSkip();
const BIN = path.join(ROOT, 'bin', 'nfsieve.js');
const Q = 11;
const POLICY = 'default: accept\nrules:\n  - name: drop-2001\n    proto: udp\n    dport: 2001\n    action: drop\n';

let lab: Lab;
let gw: Link, peer: Link;

before(() => {
  if (skip) return;
  lab = new Lab(`nfco${process.pid % 10000}`);
  [gw, peer] = lab.connect('gw', 'peer', 23);
});
after(() => { if (lab) lab.cleanup(); });

test('--coalesce-us out of range or not a number: EUSAGE (exit 2) before anything is bound', () => {
  const file = path.join(ROOT, 'examples', 'freeswan-gateway.yaml');
  for (const bad of [String(WireQueue.CoalesceMaxUs + 1), '-5', '1.5', 'soon']) {
    const r = spawnSync(process.execPath, [BIN, 'run', file, '--queue', String(Q), '--coalesce-us', bad, '--json', '--no-control'], { encoding: 'utf8' });
    assert.equal(r.status, 2, `--coalesce-us ${bad}: ${r.stdout}${r.stderr}`);
    const line = r.stdout.split('\n').find((l) => l.includes('"error"'));
    assert.ok(line, `--coalesce-us ${bad}: no JSON error: ${r.stdout}${r.stderr}`);
    assert.equal(JSON.parse(line).error.code, 'EUSAGE', line);
  }
});

test('attach({coalesceUs}) out of range or not whole: ValueError (EVALUE), nothing bound', () => {
  const policy = parsePolicyText(POLICY);
  for (const bad of [WireQueue.CoalesceMaxUs + 1, -1, 2.5, Number.NaN]) {
    assert.throws(() => attach(policy, { queues: [Q], coalesceUs: bad }), (e: Error & { code?: string }) => e.code === 'EVALUE' && /coalesceUs/.test(e.message), String(bad));
  }
});

/** A fresh hook: mangle PREROUTING from the peer to the queue (counted there, per port), counters in filter INPUT. */
function hook(): void {
  for (const t of ['mangle', 'filter']) sh(['iptables', '-t', t, '-F'], { ns: gw.ns });
  for (const port of [2000, 2001]) {
    sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', gw.ifname, '-p', 'udp', '--dport', String(port), '-m', 'comment', '--comment', `entered-${port}`], { ns: gw.ns });
    sh(['iptables', '-A', 'INPUT', '-i', gw.ifname, '-p', 'udp', '--dport', String(port), '-m', 'comment', '--comment', `arrived-${port}`], { ns: gw.ns });
  }
  sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', gw.ifname, '-j', 'NFQUEUE', '--queue-num', String(Q)], { ns: gw.ns });
}
const entered = (port: number): number => ruleCount(gw.ns, 'mangle', 'PREROUTING', `entered-${port}`);
const arrived = (port: number): number => ruleCount(gw.ns, 'filter', 'INPUT', `arrived-${port}`);
const udp = (dport: number): Uint8Array => udpFrame(gw.mac, peer.mac, peer.address, gw.address, 1000, dport, new Uint8Array(32));
/** Waiting in the kernel's queue (/proc/net/netfilter/nfnetlink_queue, third column). */
const waiting = (): number => Number(sh(['cat', '/proc/net/netfilter/nfnetlink_queue'], { ns: gw.ns }).split('\n').map((l) => l.trim().split(/\s+/)).find((f) => Number(f[0]) === Q)?.[2] ?? -1);

const waitFor = async (fn: () => boolean, ms = 20000): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return fn();
};

interface QueueLine { received: number; accepted: number; dropped: number; verdictErrors: number; kernel: { queueDropped: number; userDropped: number } }

async function stop(run: RunHandle): Promise<QueueLine> {
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.stderr());
  const final = run.lines.find((l) => l.event === 'final') as { queues: QueueLine[] } | undefined;
  assert.ok(final, `no final counters: ${run.stderr()}`);
  return final.queues[0];
}

test('--coalesce-us at its largest: the run says so, and lone packets, one at a time, each get their verdict', { skip }, async () => {
  hook();
  const run = await startRun(lab, gw.ns, [lab.file('port.yaml', POLICY), '--queue', String(Q), '--json', '--stats-every', '0', '--no-control', '--coalesce-us', String(WireQueue.CoalesceMaxUs)]);
  try {
    const attached = run.lines.find((l) => l.event === 'note' && String(l.message).startsWith('attached'));
    assert.equal(attached?.coalesceUs, WireQueue.CoalesceMaxUs, JSON.stringify(attached));
    // Each packet is sent once the one before has its verdict: never two in the queue at once.
    for (let i = 1; i <= 5; i++) {
      lab.send(peer, [udp(2000)], 1);
      assert.ok(await waitFor(() => arrived(2000) >= i), `lone packet ${i} never arrived (${arrived(2000)} did)`);
    }
    lab.send(peer, [udp(2001)], 1);
    assert.ok(await waitFor(() => waiting() === 0 && entered(2001) === 1), 'the dropped lone packet left the queue');
  } finally {
    const q = await stop(run);
    assert.deepEqual([q.received, q.accepted, q.dropped, q.verdictErrors], [6, 5, 1, 0]);
  }
  assert.equal(arrived(2000), 5);
  assert.equal(arrived(2001), 0);
});

test('--coalesce-us under a flood of mixed verdicts: every packet in gets exactly one verdict, none lost or given twice', { skip }, async () => {
  hook();
  const run = await startRun(lab, gw.ns, [lab.file('port.yaml', POLICY), '--queue', String(Q), '--json', '--stats-every', '0', '--no-control', '--coalesce-us', String(WireQueue.CoalesceMaxUs), '--max-len', '200000']);
  // Runs of accepts and drops (several verdict messages per batch), then a flood of each.
  const frames = [...Array(3).fill(udp(2000)), udp(2001), udp(2000), ...Array(2).fill(udp(2001))];
  const sent = lab.send(peer, frames, 4000) + lab.send(peer, [udp(2000)], 10000) + lab.send(peer, [udp(2001)], 10000);
  const settled = (): boolean => waiting() === 0 && arrived(2000) === entered(2000);
  assert.ok(await waitFor(settled), `queue did not settle: ${arrived(2000)} of ${entered(2000)} arrived, ${waiting()} waiting`);
  const q = await stop(run);
  const inAll = entered(2000) + entered(2001);
  assert.ok(inAll > sent * 0.9, `only ${inAll} of ${sent} reached netfilter`);
  assert.deepEqual([q.kernel.queueDropped, q.kernel.userDropped, q.verdictErrors], [0, 0, 0], 'nothing dropped by the kernel, no verdict refused');
  assert.equal(q.received, inAll, 'every packet queued was received once');
  assert.equal(q.accepted, entered(2000), 'one accept per packet to port 2000');
  assert.equal(q.dropped, entered(2001), 'one drop per packet to port 2001');
  assert.equal(arrived(2000), entered(2000));
  assert.equal(arrived(2001), 0);
});
