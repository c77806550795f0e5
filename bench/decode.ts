/**
 * Decoding cost, native against the TypeScript reference, in ns per packet.
 * Input: every frame of the shared corpus plus generated IPsec traffic.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native, RECORD_SIZE } from '../src/native';
import { packFrames } from '../src/decode/packet';
import { referenceDecode } from '../src/decode/reference';
import { readCapture } from '../src/capture/pcap';
import { Rng, randomIpPacket } from '../src/craft';
import { Row, tinybench, nsPerItem } from './common';

export async function benchDecode(sharedDir: string): Promise<Row[]> {
  const { Bench } = await tinybench();
  const rng = new Rng(42);
  const generated = Array.from({ length: 4096 }, () => randomIpPacket(rng));
  const sets: { name: string; linkType: number; frames: Uint8Array[] }[] = [{ name: 'generated IPsec/ICMP/TCP/UDP (raw IP)', linkType: 101, frames: generated }];
  const pcaps = path.join(sharedDir, 'corpus', 'pcaps');
  if (fs.existsSync(pcaps)) {
    const eth = fs.readdirSync(pcaps).flatMap((f) => readCapture(path.join(pcaps, f))).filter((f) => f.linkType === 1).map((f) => f.data);
    sets.push({ name: `shared corpus, Ethernet frames (${eth.length})`, linkType: 1, frames: eth });
  }
  const rows: Row[] = [];
  for (const s of sets) {
    const { data, offsets } = packFrames(s.frames);
    const out = new Uint8Array(s.frames.length * RECORD_SIZE);
    const addon = native();
    const bench = new Bench({ time: 500, warmupTime: 100 });
    bench
      .add('native, batch', () => { addon.decodeBatch(s.linkType, data, offsets, out); })
      .add('native, one call per packet', () => { for (const f of s.frames) addon.decodeFrame(s.linkType, f); })
      .add('reference (TypeScript)', () => { for (const f of s.frames) referenceDecode(s.linkType, f); });
    await bench.run();
    for (const t of bench.tasks) rows.push({ input: s.name, decoder: t.name, 'ns/packet': nsPerItem(t, s.frames.length).toFixed(1) });
  }
  return rows;
}
