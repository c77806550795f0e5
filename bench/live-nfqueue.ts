/**
 * How soon packets see a control-socket change, through NFQUEUE (root): the
 * peer streams IKE at about 10,000 packets/s; `nfsieve run` drops it until
 * `set.add`; a UDP socket behind the queue notes when the first one arrives
 * after the answer (and the last one after `set.del`).
 *   node build-test/bench/live-nfqueue.js [ROUNDS]
 */
import * as path from 'node:path';
import { Lab, labAvailable, sh, udpFrame } from '../test/support/netns';
import { Row, machine, markdownTable } from './common';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'nfsieve.js');

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `median ${at(0.5).toFixed(2)} ms, 90th percentile ${at(0.9).toFixed(2)} ms, max ${s[s.length - 1].toFixed(2)} ms`;
}

export async function benchLiveNfqueue(rounds = 50): Promise<Row[]> {
  const missing = labAvailable();
  if (missing) return [{ measure: 'set add to packets through NFQUEUE', value: `skipped: ${missing}` }];
  const lab = new Lab(`nflb${process.pid % 10000}`);
  try {
    const [gw, peer] = lab.connect('gw', 'peer', 31);
    sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', gw.ifname, '-j', 'NFQUEUE', '--queue-num', '11', '--queue-bypass'], { ns: gw.ns });
    const policy = lab.file('p.yaml', 'default: accept\nsets:\n  gateways:\n    elements: [10.99.0.1]\nrules:\n  - src: "@gateways"\n    proto: udp\n    dport: 500\n    action: accept\n  - proto: udp\n    dport: 500\n    action: drop\n');
    const sock = path.join(path.dirname(policy), 'ctl.sock');
    const run = lab.spawn(gw.ns, [process.execPath, BIN, 'run', policy, '--queue', '11', '--control', sock, '--stats-every', '0']);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      run.stderr!.on('data', (d) => { err += d; if (err.includes('attached')) resolve(); });
      run.on('exit', () => reject(new Error(err)));
    });
    const ike = new Uint8Array(28);
    ike[17] = 0x20; ike[18] = 34; ike[19] = 0x08; ike[27] = 28;
    const frame = udpFrame(gw.mac, peer.mac, peer.address, gw.address, 500, 500, ike);
    const sending = lab.sendAsync(peer, Array(10).fill(frame), 1_000_000, { chunk: 10, pauseMs: 1 });
    const probe = lab.spawn(gw.ns, [process.execPath, path.join(ROOT, 'build-test', 'bench', 'live-probe.js'), gw.address, sock, peer.address, String(rounds)]);
    let out = '';
    probe.stdout!.on('data', (d) => { out += d; });
    await new Promise((r) => probe.on('exit', r));
    const r = JSON.parse(out) as { add: number[]; del: number[]; rtt: number[]; gaps: number[] };
    run.kill('SIGTERM');
    void sending.catch(() => undefined);
    return [
      { measure: `control round trip inside the gateway namespace (${rounds} set.add)`, value: stats(r.rtt) },
      { measure: 'set.add answered -> first admitted packet read by a socket behind the queue (bursts of 10 packets every millisecond or more)', value: stats(r.add) },
      { measure: 'set.del answered -> last admitted packet read', value: stats(r.del) },
      { measure: 'gap between consecutive admitted packets (the resolution of the two rows above)', value: stats(r.gaps) },
    ];
  } finally {
    lab.cleanup();
  }
}

if (require.main === module) {
  benchLiveNfqueue(Number(process.argv[2] ?? 50)).then((rows) => {
    process.stdout.write(`${machine()}\n\n${markdownTable(rows)}`);
  }).catch((e) => { process.stderr.write(`${e instanceof Error ? e.stack : e}\n`); process.exitCode = 1; });
}
