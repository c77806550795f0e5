import { DecodedPacket } from '../../src/decode/packet';

/** Field-by-field difference between two decoded packets, or null when equal. */
export function packetDiff(a: DecodedPacket, b: DecodedPacket): string | null {
  const keys = Object.keys(a) as (keyof DecodedPacket)[];
  for (const k of keys) {
    const x = a[k];
    const y = b[k];
    const same = x instanceof Uint8Array && y instanceof Uint8Array
      ? x.length === y.length && x.every((v, i) => v === y[i])
      : JSON.stringify(x) === JSON.stringify(y);
    if (!same) return `${k}: native ${JSON.stringify(x instanceof Uint8Array ? [...x] : x)} vs reference ${JSON.stringify(y instanceof Uint8Array ? [...y] : y)}`;
  }
  return null;
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Repository paths. */
import * as path from 'node:path';
import * as fs from 'node:fs';
export const ROOT = path.resolve(__dirname, '..', '..', '..');
/** Test data in the repository (origins and licences in test/fixtures/README.md). */
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
export const PCAPS = path.join(FIXTURES, 'pcaps');
export const CLASSBENCH = path.join(FIXTURES, 'classbench');
/** How many captures test/fixtures/pcaps holds: loops over them assert they read this many. */
export const PCAP_COUNT = 19;

/** The captures of test/fixtures/pcaps, sorted; throws unless all PCAP_COUNT are there. */
export function fixtureCaptures(): string[] {
  const files = fs.readdirSync(PCAPS).filter((f) => /\.pcap(ng)?$/.test(f)).sort();
  if (files.length !== PCAP_COUNT) throw new Error(`expected ${PCAP_COUNT} captures in ${PCAPS}, found ${files.length}`);
  return files;
}

/**
 * True when the suite runs with ASan preloaded (.ci/sanitized-suite): resident
 * memory then includes the sanitizer's shadow and quarantine, so assertions
 * on RSS are made in the plain run only.
 */
export const UNDER_ASAN = /libasan/.test(process.env.LD_PRELOAD ?? '');
