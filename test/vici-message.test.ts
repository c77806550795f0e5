/**
 * The vici codec: the protocol description's own encoding example byte for
 * byte, round trips of random trees, and malformed input that must end in a
 * ViciError with a code (random bytes and cut-short messages included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeMessage, encodeMessage, decodePacket, encodePacket, SegmentReader, ViciError, ViciSection,
  CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN, EVENT_REGISTER, EVENT_CONFIRM, EVENT, MAX_SEGMENT_BYTES,
} from '../src/ike/vici-message';

const s = (t: string): number[] => [...Buffer.from(t, 'latin1')];
// The README's example: key1 = value1, section1 { sub-section { key2 = value2 } list1 = [item1, item2] }
const EXAMPLE = Buffer.from([
  3, 4, ...s('key1'), 0, 6, ...s('value1'),
  1, 8, ...s('section1'),
  1, 11, ...s('sub-section'),
  3, 4, ...s('key2'), 0, 6, ...s('value2'),
  2,
  4, 5, ...s('list1'),
  5, 0, 5, ...s('item1'),
  5, 0, 5, ...s('item2'),
  6,
  2,
]);

const B = (t: string): Buffer => Buffer.from(t);

test('the protocol description\'s encoding example decodes and encodes byte for byte', () => {
  const m = decodeMessage(EXAMPLE);
  assert.deepEqual(m, new Map<string, unknown>([
    ['key1', B('value1')],
    ['section1', new Map<string, unknown>([['sub-section', new Map([['key2', B('value2')]])], ['list1', [B('item1'), B('item2')]]])],
  ]));
  assert.deepEqual(encodeMessage(m), EXAMPLE);
  assert.deepEqual(encodeMessage({ key1: 'value1', section1: { 'sub-section': { key2: 'value2' }, list1: ['item1', 'item2'] } }), EXAMPLE);
});

test('packets: type byte, name for named types, message for message types, 4-byte big-endian length', () => {
  const p = encodePacket({ type: CMD_REQUEST, name: 'list-sas', message: { noblock: 'yes' } });
  assert.equal(p.readUInt32BE(0), p.length - 4);
  assert.deepEqual([...p.subarray(4, 14)], [CMD_REQUEST, 8, ...s('list-sas')]);
  assert.deepEqual(decodePacket(p.subarray(4)), { type: CMD_REQUEST, name: 'list-sas', message: new Map([['noblock', B('yes')]]) });
  assert.deepEqual([...encodePacket({ type: EVENT_REGISTER, name: 'ike-updown' })], [0, 0, 0, 12, EVENT_REGISTER, 10, ...s('ike-updown')]);
  assert.deepEqual([...encodePacket({ type: EVENT_CONFIRM })], [0, 0, 0, 1, EVENT_CONFIRM]);
  assert.deepEqual(decodePacket(Buffer.from([CMD_UNKNOWN])), { type: CMD_UNKNOWN });
  assert.deepEqual(decodePacket(Buffer.from([CMD_RESPONSE])), { type: CMD_RESPONSE, message: new Map() });
  assert.deepEqual(decodePacket(Buffer.from([EVENT, 1, ...s('x'), 3, 1, ...s('k'), 0, 0])), { type: EVENT, name: 'x', message: new Map([['k', Buffer.alloc(0)]]) });
});

function code(f: () => unknown): string {
  try { f(); } catch (e) {
    assert.ok(e instanceof ViciError, `not a ViciError: ${e}`);
    return e.code;
  }
  return 'none';
}

test('malformed messages and packets are refused with a code', () => {
  assert.equal(code(() => decodeMessage(Buffer.from([3, 4, ...s('key')]))), 'truncated');
  assert.equal(code(() => decodeMessage(Buffer.from([3, 1, ...s('k'), 0, 9, 1]))), 'truncated');
  assert.equal(code(() => decodeMessage(Buffer.from([2]))), 'unbalanced');
  assert.equal(code(() => decodeMessage(Buffer.from([1, 1, ...s('s')]))), 'unbalanced');
  assert.equal(code(() => decodeMessage(Buffer.from([4, 1, ...s('l')]))), 'unbalanced');
  assert.equal(code(() => decodeMessage(Buffer.from([6]))), 'unbalanced');
  assert.equal(code(() => decodeMessage(Buffer.from([5, 0, 0]))), 'misplaced');
  assert.equal(code(() => decodeMessage(Buffer.from([4, 1, ...s('l'), 3, 1, ...s('k'), 0, 0, 6]))), 'misplaced');
  assert.equal(code(() => decodeMessage(Buffer.from([4, 1, ...s('l'), 4, 1, ...s('m'), 6, 6]))), 'misplaced');
  assert.equal(code(() => decodeMessage(Buffer.from([3, 1, ...s('k'), 0, 0, 3, 1, ...s('k'), 0, 0]))), 'duplicate-key');
  assert.equal(code(() => decodeMessage(Buffer.from([0]))), 'bad-element');
  assert.equal(code(() => decodeMessage(Buffer.from([7]))), 'bad-element');
  assert.equal(code(() => decodePacket(Buffer.alloc(0))), 'empty-packet');
  assert.equal(code(() => decodePacket(Buffer.from([8]))), 'bad-packet-type');
  assert.equal(code(() => decodePacket(Buffer.from([EVENT_CONFIRM, 0]))), 'trailing-bytes');
  assert.equal(code(() => decodePacket(Buffer.from([EVENT, 5, ...s('ab')]))), 'truncated');
  assert.equal(code(() => encodeMessage({ k: 'x'.repeat(65536) })), 'too-long');
  assert.equal(code(() => encodeMessage({ ['k'.repeat(256)]: 'v' })), 'too-long');
  assert.equal(code(() => encodeMessage({ 'é': 'v' })), 'too-long');
  assert.equal(code(() => encodePacket({ type: 9 })), 'bad-packet-type');
});

test('segments: split across chunks, several in one chunk, oversize length refused', () => {
  const a = encodePacket({ type: EVENT, name: 'ike-updown', message: { up: 'yes' } });
  const b = encodePacket({ type: CMD_RESPONSE, message: {} });
  const all = Buffer.concat([a, b]);
  for (let cut = 0; cut <= all.length; cut++) {
    const r = new SegmentReader();
    const got = [...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))];
    assert.deepEqual(got.map((g) => decodePacket(g).type), [EVENT, CMD_RESPONSE], `cut at ${cut}`);
    assert.equal(r.buffered, 0);
  }
  const big = Buffer.alloc(4);
  big.writeUInt32BE(MAX_SEGMENT_BYTES + 1, 0);
  assert.equal(code(() => new SegmentReader().push(big)), 'too-long');
  const max = Buffer.alloc(4);
  max.writeUInt32BE(MAX_SEGMENT_BYTES, 0);
  assert.deepEqual(new SegmentReader().push(max), []);
});

const name = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz-_0123456789'), minLength: 0, maxLength: 12 });
const blob = fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u));
const tree: fc.Arbitrary<ViciSection> = fc.letrec<{ section: ViciSection }>((tie) => ({
  section: fc.uniqueArray(fc.tuple(name, fc.oneof({ maxDepth: 3 }, blob, fc.array(blob, { maxLength: 4 }), tie('section'))), { selector: (e) => e[0], maxLength: 5 })
    .map((entries) => new Map(entries)),
})).section;

test('random trees round-trip through encode and decode', () => {
  fc.assert(fc.property(tree, (m) => {
    const bytes = encodeMessage(m);
    assert.deepEqual(decodeMessage(bytes), m);
    assert.deepEqual(encodeMessage(decodeMessage(bytes)), bytes);
  }), { numRuns: 500 });
});

test('random bytes and cut-short or bit-flipped messages: a ViciError or a tree, nothing else', () => {
  // code() fails the property on anything thrown that is not a ViciError.
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (u) => { code(() => decodePacket(u)); }), { numRuns: 2000 });
  fc.assert(fc.property(tree, fc.nat(), fc.nat(255), (m, at, flip) => {
    const bytes = encodeMessage(m);
    if (bytes.length === 0) return;
    code(() => decodeMessage(bytes.subarray(0, at % bytes.length)));
    const copy = Buffer.from(bytes);
    copy[at % copy.length] ^= flip;
    code(() => decodeMessage(copy));
  }), { numRuns: 1000 });
});
