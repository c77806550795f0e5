/**
 * Packets per second through one NFQUEUE queue on a veth pair, side by side:
 * `nfsieve run` with the FreeS/WAN example policy, and a minimal C consumer
 * (bench/peers/nfq_accept.c, libnetfilter_queue, one verdict per packet),
 * the floor of what NFQUEUE costs. Needs root, iproute2, iptables, a C
 * compiler and libnetfilter-queue-dev; skipped with a message otherwise.
 */
import { spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, Link, labAvailable, sh, udpFrame } from '../test/support/netns';
import { Row } from './common';

const ROOT = path.resolve(__dirname, '..', '..');
const WINDOW_MS = 3000;

function ikeFrame(from: Link, to: Link, i: number): Uint8Array {
  const ike = new Uint8Array(28);
  ike.set([i & 255, 2, 3, 4, 5, 6, 7, 8], 0);
  ike[17] = 0x20; ike[18] = 34; ike[19] = 0x08; ike[27] = 28;
  return udpFrame(to.mac, from.mac, from.address, to.address, 500, 500, ike);
}

/** Packets/s a consumer sustains: the growth of its counter over a window of saturating traffic. */
async function rate(lab: Lab, sender: Link, frames: Uint8Array[], consumer: ChildProcess, read: () => number): Promise<number> {
  const sending = lab.sendAsync(sender, frames, 400000);
  await new Promise((r) => setTimeout(r, 1000)); // ramp up
  const c0 = read(), t0 = Date.now();
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  const c1 = read(), t1 = Date.now();
  consumer.kill('SIGTERM');
  sh(['pkill', '-f', 'send-frames.js'], { allowFail: true });
  await sending.catch(() => undefined);
  return ((c1 - c0) * 1000) / (t1 - t0);
}

export async function benchNfqueue(): Promise<{ rows: Row[]; note: string }> {
  const missing = labAvailable();
  if (missing) return { rows: [], note: `NFQUEUE throughput not measured: ${missing}.` };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-bench-'));
  const peerBin = path.join(tmp, 'nfq_accept');
  const cc = spawnSync('cc', ['-O2', path.join(ROOT, 'bench', 'peers', 'nfq_accept.c'), '-lnetfilter_queue', '-lnfnetlink', '-o', peerBin], { encoding: 'utf8' });
  const lab = new Lab(`nfsb${process.pid % 10000}`);
  try {
    const [gw, peer] = lab.connect('gw', 'peer', 31);
    sh(['iptables', '-A', 'INPUT', '-i', gw.ifname, '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '5'], { ns: gw.ns });
    const frames = Array.from({ length: 64 }, (_, i) => ikeFrame(peer, gw, i));
    const policyText = fs.readFileSync(path.join(ROOT, 'examples', 'freeswan-gateway.yaml'), 'utf8').replace('      - 192.0.2.1          # documentation addresses: replace with your peers', `      - ${peer.address}`);
    const policy = lab.file('gateway.yaml', policyText);
    const rows: Row[] = [];
    // nfsieve
    const run = lab.spawn(gw.ns, [process.execPath, path.join(ROOT, 'bin', 'nfsieve.js'), 'run', policy, '--queue', '5', '--json', '--stats-every', '1']);
    let received = 0;
    let buf = '';
    run.stdout!.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const o = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (o.event === 'stats') received = o.queues[0].received;
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    const ours = await rate(lab, peer, frames, run, () => received);
    rows.push({ consumer: 'nfsieve run (FreeS/WAN example policy, batched verdicts)', 'packets/s': Math.round(ours) });
    await new Promise((r) => setTimeout(r, 1000));
    let floor = NaN;
    if (cc.status === 0) {
      const peerProc = lab.spawn(gw.ns, [peerBin, '5', '256']);
      let count = 0;
      peerProc.stdout!.on('data', (d) => {
        const lines = String(d).trim().split('\n');
        const n = Number(lines[lines.length - 1]);
        if (!Number.isNaN(n)) count = n;
      });
      await new Promise((r) => setTimeout(r, 1000));
      floor = await rate(lab, peer, frames, peerProc, () => count);
      rows.push({ consumer: 'minimal C consumer (libnetfilter_queue, accept, one verdict per packet)', 'packets/s': Math.round(floor) });
    }
    const note = cc.status === 0
      ? `64-byte-payload UDP (IKE_SA_INIT headers) from one veth peer, saturating; copy range 256; counters read once a second over a ${WINDOW_MS / 1000} s window. Ratio nfsieve / C floor: ${(ours / floor).toFixed(2)}.`
      : `C consumer not built (${cc.stderr.trim().split('\n')[0] ?? 'cc failed'}): apt-get install -y libnetfilter-queue-dev`;
    return { rows, note };
  } finally {
    lab.cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
