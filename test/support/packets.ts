/**
 * Packet generators for the tests: src/craft.ts's well-formed packets framed
 * for every link type, mutated, and the header-chain packets at their
 * boundaries (./headers).
 */
import { Rng, randomIpPacket } from '../../src/craft';
import { randomChainPacket, someAddress } from './headers';
import { LinkType } from '../../src/wire';

export * from '../../src/craft';

const be16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];
const be32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

/** Wrap an IP packet in a frame of the given link type. */
export function frame(linkType: number, ip: Uint8Array, rng?: Rng): Uint8Array {
  const v6 = ip[0] >> 4 === 6;
  const ether = v6 ? 0x86dd : 0x0800;
  switch (linkType) {
    case 1: {
      const tags = rng ? rng.int(3) : 0;
      const hdr = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
      for (let i = 0; i < tags; i++) hdr.push(0x81, 0x00, 0x00, 10 + i);
      return new Uint8Array([...hdr, ...be16(ether), ...ip]);
    }
    case 0: return new Uint8Array([v6 ? 24 : 2, 0, 0, 0, ...ip]);
    case 108: return new Uint8Array([...be32(v6 ? 24 : 2), ...ip]);
    case 9: case 50: return new Uint8Array([0xff, 0x03, ...be16(v6 ? 0x57 : 0x21), ...ip]);
    case 113: return new Uint8Array([0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, ...be16(ether), ...ip]);
    case 276: return new Uint8Array([...be16(ether), 0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 6, 2, 0, 0, 0, 0, 1, 0, ...ip]);
    default: return ip; // 101, 228, 229
  }
}

export const LINK_TYPES: readonly number[] = Object.values(LinkType);

/** Damage a packet: flip bytes (biased towards headers), truncate, or both. */
export function mutate(rng: Rng, bytes: Uint8Array): Uint8Array {
  let out = bytes.slice();
  const edits = 1 + rng.int(4);
  for (let i = 0; i < edits; i++) {
    const what = rng.int(4);
    if (what === 0 && out.length > 0) out = out.slice(0, rng.int(out.length + 1));
    else if (out.length > 0) {
      const at = rng.chance(0.7) ? rng.int(Math.min(out.length, 80)) : rng.int(out.length);
      out[at] = rng.chance(0.5) ? rng.u32() & 0xff : out[at] ^ (1 << rng.int(8));
    }
  }
  return out;
}

/** A random frame: well-formed most of the time, mutated or pure noise otherwise. */
export function randomFrame(rng: Rng, fixedLinkType?: number): { linkType: number; data: Uint8Array } {
  const linkType = fixedLinkType ?? rng.pick(LINK_TYPES);
  let ip = randomIpPacket(rng);
  if (linkType === LinkType.Ipv4 && ip[0] >> 4 === 6) ip = randomIpPacket(rng);
  let data = frame(linkType, ip, rng);
  const r = rng.int(10);
  if (r < 5) data = mutate(rng, data);
  else if (r === 5) data = rng.bytes(rng.int(80));
  return { linkType, data };
}

/** randomFrame(), half the time replaced by a header-chain packet at its boundaries. */
export function randomFrameWide(rng: Rng, fixedLinkType?: number): { linkType: number; data: Uint8Array } {
  if (rng.chance(0.5)) return randomFrame(rng, fixedLinkType);
  const linkType = fixedLinkType ?? rng.pick(LINK_TYPES);
  const family: 4 | 6 = linkType === LinkType.Ipv4 ? 4 : linkType === LinkType.Ipv6 ? 6 : rng.chance(0.5) ? 4 : 6;
  const ip = randomChainPacket(rng, family, someAddress(rng, family), someAddress(rng, family));
  return { linkType, data: frame(linkType, ip, rng) };
}
