/**
 * Packet generators for the tests: src/craft.ts's well-formed and mutated
 * frames, and the header-chain packets at their boundaries (./headers).
 */
import { Rng, randomFrame, frame, LINK_TYPES } from '../../src/craft';
import { randomChainPacket, someAddress } from './headers';

export * from '../../src/craft';

/** randomFrame(), half the time replaced by a header-chain packet at its boundaries. */
export function randomFrameWide(rng: Rng, fixedLinkType?: number): { linkType: number; data: Uint8Array } {
  if (rng.chance(0.5)) return randomFrame(rng, fixedLinkType);
  const linkType = fixedLinkType ?? rng.pick(LINK_TYPES);
  const family: 4 | 6 = linkType === 228 ? 4 : linkType === 229 ? 6 : rng.chance(0.5) ? 4 : 6;
  const ip = randomChainPacket(rng, family, someAddress(rng, family), someAddress(rng, family));
  return { linkType, data: frame(linkType, ip, rng) };
}
