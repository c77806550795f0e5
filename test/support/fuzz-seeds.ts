/**
 * Seed corpora for the libFuzzer targets (native/fuzz/*_libfuzzer.cc): the
 * captures of test/fixtures (and the shared corpus when present) plus
 * generated frames for the decoder; tables compiled from random policies for
 * the table loader and classify targets (valid tables only come from the
 * compiler, so the fuzzer starts from them and mutates); random operation
 * strings for the named sets.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCapture } from '../../src/capture/pcap';
import { definePolicy } from '../../src/policy/define';
import { compile } from '../../src/compile/compile';
import { Rng, randomFrame, randomIpPacket, LINK_TYPES } from './packets';
import { randomPolicy } from './policies';
import { ROOT, PCAPS } from './compare';

export const FUZZ_TARGETS = ['decode', 'table', 'classify', 'sets'] as const;
export type FuzzTarget = (typeof FUZZ_TARGETS)[number];

/** Capture files to seed the decoder with: test/fixtures first, the shared corpus if there. */
export function seedCaptures(): string[] {
  const dirs = [path.join(ROOT, 'test', 'fixtures', 'pcaps'), PCAPS];
  const files: string[] = [];
  for (const d of dirs) {
    if (!fs.existsSync(d)) continue;
    for (const f of fs.readdirSync(d)) if (/\.(pcap|pcapng)$/.test(f)) files.push(path.join(d, f));
  }
  return files;
}

function writeAll(dir: string, inputs: Uint8Array[]): number {
  fs.mkdirSync(dir, { recursive: true });
  inputs.forEach((b, i) => fs.writeFileSync(path.join(dir, `seed-${i}`), b));
  return inputs.length;
}

function decodeSeeds(rng: Rng): Uint8Array[] {
  const out: Uint8Array[] = [];
  const withLink = (linkType: number, data: Uint8Array): Uint8Array => {
    const at = LINK_TYPES.indexOf(linkType as (typeof LINK_TYPES)[number]);
    return at < 0 ? new Uint8Array(0) : new Uint8Array([at, ...data]);
  };
  for (const file of seedCaptures()) {
    let frames;
    try { frames = readCapture(file); } catch { continue; }
    for (const f of frames.slice(0, 50)) {
      const s = withLink(f.linkType, f.data);
      if (s.length > 0) out.push(s);
    }
  }
  for (let i = 0; i < 400; i++) {
    const f = randomFrame(rng);
    out.push(withLink(f.linkType, f.data));
  }
  return out;
}

function tableSeeds(rng: Rng, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const policy = definePolicy(randomPolicy(rng, 1 + rng.int(i % 4 === 0 ? 40 : 8)));
    out.push(compile(policy, { analyse: false }).table);
  }
  return out;
}

/** classify_libfuzzer's input: u32 table length, table, then (u8 length, IP bytes, metadata byte) per packet. */
function classifySeeds(rng: Rng, tables: Uint8Array[]): Uint8Array[] {
  return tables.map((t) => {
    const parts: number[] = [t.length & 255, (t.length >> 8) & 255, (t.length >> 16) & 255, 0, ...t];
    for (let i = 0; i < 16; i++) {
      const ip = randomIpPacket(rng).slice(0, 255);
      parts.push(ip.length, ...ip, rng.int(128));
    }
    return new Uint8Array(parts);
  });
}

/** Write every target's seeds under dir/<target>/; returns the count per target. */
export function writeSeeds(dir: string, seed = 1): Record<FuzzTarget, number> {
  const rng = new Rng(seed);
  const tables = tableSeeds(rng, 60);
  return {
    decode: writeAll(path.join(dir, 'decode'), decodeSeeds(rng)),
    table: writeAll(path.join(dir, 'table'), tables),
    classify: writeAll(path.join(dir, 'classify'), classifySeeds(rng, tables)),
    sets: writeAll(path.join(dir, 'sets'), Array.from({ length: 20 }, () => rng.bytes(64 + rng.int(512)))),
  };
}
