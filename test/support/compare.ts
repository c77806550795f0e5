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
export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const SHARED = path.resolve(ROOT, '..', 'shared');
export const PCAPS = path.join(SHARED, 'corpus', 'pcaps');
export const CLASSBENCH = path.join(SHARED, 'corpus', 'classbench');
