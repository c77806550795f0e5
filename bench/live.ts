/**
 * Live sets: what origins and timeouts cost a lookup, and the control round
 * trip (a `set.add` request answered, then a packet classified against the
 * change). `node build-test/bench/live.js` prints a table; `npm run bench`
 * includes it (a few seconds, no root).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Classifier } from '../src/classifier';
import { definePolicy } from '../src/policy/define';
import { packFrames } from '../src/decode/packet';
import { ControlService } from '../src/control/service';
import { ControlServer } from '../src/control/server';
import { Row, machine, markdownTable } from './common';

const addr = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

function gatewayClassifier(count: number): Classifier {
  return Classifier.fromPolicy(definePolicy({
    default: 'drop',
    sets: { gw: { type: 'address', elements: Array.from({ length: count }, (_, i) => addr(i)) } },
    rules: [{ name: 'ike', src: '@gw', proto: 'udp', dport: [500, 4500], action: 'accept' }],
  }));
}

/** UDP 500 from 10.0.x.y, every one a member of a 100,000-address set built by gatewayClassifier. */
function hitFrames(): { data: Uint8Array; offsets: Uint32Array; count: number } {
  const hex = (n: number): string => n.toString(16).padStart(2, '0');
  const frames = Array.from({ length: 4096 }, (_, i) => Buffer.from(`4500001c000000004011000` + `00a00${hex((i * 13) & 0xff)}${hex(i & 0xff)}0a00000101f401f400080000`, 'hex'));
  return { ...packFrames(frames), count: frames.length };
}

function nsPerPacket(c: Classifier, f: { data: Uint8Array; offsets: Uint32Array; count: number }): number {
  const out = new Uint32Array(f.count * 3);
  let best = Infinity;
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    c.native.classifyBatch(101, f.data, f.offsets, out);
    best = Math.min(best, performance.now() - t);
  }
  if (out[0] !== 2) throw new Error('bench frames should hit the set');
  return (best * 1e6) / f.count;
}

function lookupRows(): Row[] {
  const f = hitFrames();
  const file = gatewayClassifier(100_000);
  const live = gatewayClassifier(100_000);
  // The hit members become live-only without a timeout, then live-only with one (a clock read per hit).
  for (let i = 0; i < 65536; i++) live.addToSet('gw', addr(i));
  live.flushSet('gw', 'file');
  const untimed = nsPerPacket(live, f);
  for (let i = 0; i < 65536; i++) live.addToSet('gw', addr(i), { timeout: 3600 });
  const timed = nsPerPacket(live, f);
  return [
    { measure: '100,000-address set, every packet hits a file member', value: `${nsPerPacket(file, f).toFixed(1)} ns/packet` },
    { measure: 'same, the members live (no timeout)', value: `${untimed.toFixed(1)} ns/packet` },
    { measure: 'same, the members live with a timeout (expiry checked on each hit)', value: `${timed.toFixed(1)} ns/packet` },
  ];
}

function percentile(sorted: number[], p: number): number { return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]; }

async function roundTripRows(): Promise<Row[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsieve-bench-'));
  const c = gatewayClassifier(1);
  const server = await ControlServer.listen(new ControlService({ sets: c }), { path: path.join(dir, 'ctl.sock') });
  const probe = Buffer.from('4500001c00000000401100000ac800010a00000101f401f400080000', 'hex');  // from 10.200.0.1
  const s = net.createConnection(server.path);
  await new Promise((r) => s.once('connect', r));
  s.setEncoding('utf8');
  const times: number[] = [];
  let stale = 0;
  let buffer = '';
  const n = 2000;
  for (let i = 0; i < n; i++) {
    const cmd = i % 2 === 0 ? 'set.add' : 'set.del';
    const t = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      const onData = (d: string): void => {
        buffer += d;
        if (!buffer.includes('\n')) return;
        buffer = '';
        s.off('data', onData);
        resolve();
      };
      s.on('data', onData);
      s.write(JSON.stringify({ v: 1, id: i, cmd, set: 'gw', values: ['10.200.0.1'] }) + '\n');
    });
    times.push(Number(process.hrtime.bigint() - t) / 1000);
    // The first packet after the answer sees the change.
    if ((c.classify(probe).verdict === 'accept') !== (cmd === 'set.add')) stale++;
  }
  s.destroy();
  times.sort((a, b) => a - b);
  const bin = path.resolve(__dirname, '..', '..', 'bin', 'nfsieve.js');
  const cliTimes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await promisify(execFile)(process.execPath, [bin, 'set', 'add', 'gw', '10.200.0.2', '--control', server.path]);  // the server lives in this process: never block it
    cliTimes.push(performance.now() - t);
  }
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return [
    { measure: `control round trip, set.add/set.del on one connection (${n} requests): median`, value: `${percentile(times, 0.5).toFixed(0)} µs` },
    { measure: 'control round trip: 99th percentile', value: `${percentile(times, 0.99).toFixed(0)} µs` },
    { measure: 'packets classified right after the answer that missed the change', value: `${stale} of ${n}` },
    { measure: '`nfsieve set add` (a new Node process, connect, request, answer): best of 5', value: `${Math.min(...cliTimes).toFixed(0)} ms` },
  ];
}

export async function benchLive(): Promise<{ rows: Row[]; note: string }> {
  const rows = [...lookupRows(), ...(await roundTripRows())];
  const note = 'Lookups: one native call for 4,096 decoded-and-classified frames, the fastest of 200. The round trip is a Classifier behind the same ControlService and ControlServer as `nfsieve run`; the change is made before the answer is written, so a packet classified after the answer sees it (in `nfsieve run`, a batch already being classified finishes with the sets as they were: at most 64 packets).';
  return { rows, note };
}

if (require.main === module) {
  benchLive().then(({ rows, note }) => {
    process.stdout.write(`${machine()}\n\n${markdownTable(rows)}\n${note}\n`);
  }).catch((e) => { process.stderr.write(`${e instanceof Error ? e.stack : e}\n`); process.exitCode = 1; });
}
