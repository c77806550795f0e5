import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { native, RECORD_SIZE } from '../src/native';
import { recordToPacket, decodeFrame, packFrames, MALFORMED_NAMES } from '../src/decode/packet';
import { referenceDecode } from '../src/decode/reference';
import { Rng, randomFrameWide as randomFrame, LINK_TYPES } from './support/packets';
import { packetDiff, hex } from './support/compare';

const SEED = Number(process.env.NFSIEVE_SEED ?? Date.now() % 0x7fffffff);

test(`native and reference decoders agree on 1,000,000 random and mutated frames (seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  const addon = native();
  const batch = 10_000;
  let checked = 0;
  let malformed = 0;
  for (let round = 0; round < 100; round++) {
    // One link type per batch call; frames of mixed link types are grouped.
    const frames = Array.from({ length: batch }, () => randomFrame(rng));
    for (const lt of LINK_TYPES) {
      const group = frames.filter((f) => f.linkType === lt);
      if (group.length === 0) continue;
      const { data, offsets } = packFrames(group.map((f) => f.data));
      const out = new Uint8Array(group.length * RECORD_SIZE);
      addon.decodeBatch(lt, data, offsets, out);
      for (let i = 0; i < group.length; i++) {
        const nat = recordToPacket(out, i * RECORD_SIZE);
        const ref = referenceDecode(lt, group[i].data);
        const diff = packetDiff(nat, ref);
        if (diff) assert.fail(`seed ${SEED}: link type ${lt}, frame ${hex(group[i].data)}: ${diff}`);
        if (nat.malformed) malformed++;
        checked++;
      }
    }
  }
  assert.equal(checked, 1_000_000);
  // The generator must exercise both sides of the contract.
  assert.ok(malformed > 100_000 && malformed < 900_000, `malformed share out of range: ${malformed}`);
});

test('native and reference decoders agree on arbitrary bytes (fast-check)', () => {
  fc.assert(
    fc.property(fc.constantFrom(...LINK_TYPES), fc.uint8Array({ maxLength: 120 }), (lt, bytes) => {
      const diff = packetDiff(decodeFrame(lt, bytes), referenceDecode(lt, bytes));
      return diff === null;
    }),
    { numRuns: 20_000, seed: SEED },
  );
});

test('both decoders name malformed reasons identically', () => {
  assert.deepEqual(native().malformedNames(), [...MALFORMED_NAMES]);
});

test('decodeBatch refuses offsets past its data instead of reading them', () => {
  const addon = native();
  const data = new Uint8Array(10);
  const out = new Uint8Array(RECORD_SIZE);
  assert.throws(() => addon.decodeBatch(101, data, new Uint32Array([0, 11]), out), /offsets/);
  assert.throws(() => addon.decodeBatch(101, data, new Uint32Array([5, 2]), out), /offsets/);
  assert.throws(() => addon.decodeBatch(101, data, new Uint32Array([0, 5, 10]), out), /too small/);
  assert.throws(() => addon.decodeFrame(147, data), /unsupported link type 147/);
});
