/**
 * The cost of the `limit` condition per packet: the same trace of IKE_SA_INIT
 * requests from 1,000 sources (decode + classify, batches of 256) through a
 * policy with and without its limits: one rule alone, per rule and per source,
 * and the shipped road-warrior policy. Run: `node build-test/bench/limit.js`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compile } from '../src/compile/compile';
import { Classifier } from '../src/classifier';
import { definePolicy, PolicyInput, RuleInput } from '../src/policy/define';
import { parsePolicyText } from '../src/policy/parse';
import { packFrames } from '../src/decode/packet';
import { ikeHeader, ipPacket, udp } from '../src/craft';
import { Row, markdownTable, machine, nsPerItem, tinybench } from './common';

const BATCH = 256;

function trace(): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 4096; i++) {
    const s = i % 1000;
    frames.push(ipPacket({ family: 4, src: new Uint8Array([10, 77, s >> 8, s & 255]), dst: new Uint8Array([10, 0, 0, 1]), proto: 17,
      upper: udp(500, 500, ikeHeader({ ispi: new Uint8Array(8).fill(i & 255), nextPayload: 33, exchange: 34, flags: 0x08 })) }));
  }
  return frames;
}

function single(limit?: RuleInput['limit']): PolicyInput {
  return { default: 'drop', rules: [{ name: 'ike-sa-init', proto: 'udp', dport: 500, ike: { initial: true }, ...(limit ? { limit } : {}), action: 'accept' }] };
}

export async function limitBench(): Promise<{ rows: Row[]; text: string }> {
  const { Bench } = await tinybench();
  const frames = trace();
  const batches: { data: Uint8Array; offsets: Uint32Array }[] = [];
  for (let i = 0; i < frames.length; i += BATCH) batches.push(packFrames(frames.slice(i, i + BATCH)));
  const out = new Uint32Array(BATCH * 3);
  const example = fs.readFileSync(path.join(__dirname, '..', '..', 'examples', 'road-warrior-gateway.yaml'), 'utf8');
  const cases: [string, Classifier][] = [
    ['one rule, no limit', new Classifier(compile(definePolicy(single())))],
    ['one rule, limit per rule', new Classifier(compile(definePolicy(single({ rate: '1000/s', burst: 1000 }))))],
    ['one rule, limit per source', new Classifier(compile(definePolicy(single({ rate: '10/s', burst: 10, per: 'src' }))))],
    ['road-warrior, limits removed', new Classifier(compile(parsePolicyText(example.replace(/^\s+limit: .*\n/gm, ''))))],
    ['road-warrior (per source, then total)', new Classifier(compile(parsePolicyText(example)))],
  ];
  const bench = new Bench({ time: 400, warmupTime: 100 });
  for (const [name, c] of cases) {
    bench.add(name, () => {
      for (const b of batches) c.native.classifyBatch(101, b.data, b.offsets, out);
    });
  }
  await bench.run();
  const rows: Row[] = bench.tasks.map((t, i) => ({
    policy: cases[i][0],
    'ns/packet': nsPerItem(t, frames.length).toFixed(1),
    'limit state (bytes)': cases[i][1].limits().bytes,
  }));
  const base = [Number(rows[0]['ns/packet']), Number(rows[0]['ns/packet']), Number(rows[0]['ns/packet']), Number(rows[3]['ns/packet']), Number(rows[3]['ns/packet'])];
  rows.forEach((r, i) => { r['limit cost (ns)'] = (Number(r['ns/packet']) - base[i]).toFixed(1); });
  const text = `Limit cost per packet (decode + classify, batches of ${BATCH}, ${frames.length} IKE_SA_INIT requests from 1,000 sources; ${machine()})\n\n${markdownTable(rows)}`;
  return { rows, text };
}

if (require.main === module) {
  limitBench().then((r) => process.stdout.write(r.text)).catch((e) => { console.error(e); process.exit(1); });
}
