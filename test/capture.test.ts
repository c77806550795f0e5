import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCapture, writePcap, CaptureError } from '../src/capture/pcap';

const ip = Buffer.from('4500001c000000004011000008080808c0000201' + '01f401f400080000', 'hex');
const eth = Buffer.concat([Buffer.from('020000000001020000000002' + '0800', 'hex'), ip]);

function pcap(bigEndian: boolean, nano: boolean, linkType: number, frames: Buffer[]): Buffer {
  const w32 = (b: Buffer, v: number, at: number): void => { if (bigEndian) b.writeUInt32BE(v >>> 0, at); else b.writeUInt32LE(v >>> 0, at); };
  const h = Buffer.alloc(24);
  w32(h, nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  if (bigEndian) { h.writeUInt16BE(2, 4); h.writeUInt16BE(4, 6); } else { h.writeUInt16LE(2, 4); h.writeUInt16LE(4, 6); }
  w32(h, 65535, 16);
  w32(h, linkType, 20);
  const recs = frames.map((f, i) => {
    const r = Buffer.alloc(16);
    w32(r, 1000 + i, 0);
    w32(r, nano ? 500_000_000 : 500_000, 4);
    w32(r, f.length, 8);
    w32(r, f.length + 10, 12);
    return Buffer.concat([r, f]);
  });
  return Buffer.concat([h, ...recs]);
}

/** A pcapng block: type, body, lengths, 4-byte padding. */
function block(type: number, body: Buffer, be = false): Buffer {
  const pad = (4 - (body.length % 4)) % 4;
  const len = 12 + body.length + pad;
  const b = Buffer.alloc(len);
  const w = (v: number, at: number): void => { if (be) b.writeUInt32BE(v >>> 0, at); else b.writeUInt32LE(v >>> 0, at); };
  w(type, 0); w(len, 4); body.copy(b, 8); w(len, len - 4);
  return b;
}

function pcapng(be: boolean): Buffer {
  const u16 = (v: number): Buffer => { const b = Buffer.alloc(2); if (be) b.writeUInt16BE(v); else b.writeUInt16LE(v); return b; };
  const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); if (be) b.writeUInt32BE(v >>> 0); else b.writeUInt32LE(v >>> 0); return b; };
  const shb = block(0x0a0d0d0a, Buffer.concat([u32(0x1a2b3c4d), u16(1), u16(0), u32(0xffffffff), u32(0xffffffff)]), be);
  // Interface 0: Ethernet, nanosecond resolution (if_tsresol = 9); interface 1: raw IPv4.
  const idb0 = block(1, Buffer.concat([u16(1), u16(0), u32(65535), u16(9), u16(1), Buffer.from([9, 0, 0, 0]), u16(0), u16(0)]), be);
  const idb1 = block(1, Buffer.concat([u16(228), u16(0), u32(65535)]), be);
  const epb = (ifc: number, data: Buffer, ts: bigint): Buffer => {
    const pad = Buffer.alloc((4 - (data.length % 4)) % 4);
    return block(6, Buffer.concat([u32(ifc), u32(Number(ts >> 32n)), u32(Number(ts & 0xffffffffn)), u32(data.length), u32(data.length), data, pad]), be);
  };
  const spb = block(3, Buffer.concat([u32(eth.length), eth, Buffer.alloc((4 - (eth.length % 4)) % 4)]), be);
  const isb = block(5, Buffer.concat([u32(0), u32(0), u32(0)]), be); // statistics: skipped
  return Buffer.concat([shb, idb0, idb1, epb(0, eth, 1_500_000_000_000_000_000n), epb(1, ip, 2_000_000n), isb, spb]);
}

test('classic pcap in both byte orders, micro- and nanosecond', () => {
  for (const be of [false, true]) {
    for (const nano of [false, true]) {
      const frames = parseCapture(pcap(be, nano, 1, [eth, eth]), 'x.pcap');
      assert.equal(frames.length, 2);
      assert.equal(frames[1].linkType, 1);
      assert.deepEqual(Buffer.from(frames[0].data), eth);
      assert.equal(frames[1].time, 1001.5);
      assert.equal(frames[0].originalLength, eth.length + 10);
    }
  }
  // The FCS bits above the link type are ignored (the corpus has 0x40000001).
  assert.equal(parseCapture(pcap(false, false, 0x40000001, [eth]))[0].linkType, 1);
});

test('pcapng with several interfaces, EPB, SPB and skipped blocks, in both byte orders', () => {
  for (const be of [false, true]) {
    const frames = parseCapture(pcapng(be), 'x.pcapng');
    assert.deepEqual(frames.map((f) => f.linkType), [1, 228, 1]);
    assert.equal(frames[0].time, 1_500_000_000);
    assert.equal(frames[1].time, 2);
    assert.deepEqual(Buffer.from(frames[1].data), ip);
    assert.deepEqual(Buffer.from(frames[2].data), eth);
  }
});

test('corrupt captures name the file and the offset', () => {
  const good = pcap(false, false, 1, [eth]);
  assert.throws(() => parseCapture(good.subarray(0, good.length - 3), 'cut.pcap'), (e: Error) => e instanceof CaptureError && e.message === 'cut.pcap: offset 24: record of 42 bytes runs past the end of the file (39 left)');
  assert.throws(() => parseCapture(Buffer.from('not a capture at all'), 'junk'), { message: 'junk: offset 0: not a pcap or pcapng file (magic 0x6e6f7420)' });
  assert.throws(() => parseCapture(pcap(false, false, 147, [eth]), 'lt.pcap'), { message: /^lt\.pcap: offset 20: unsupported link type 147/ });
  const ng = pcapng(false);
  const bad = Buffer.from(ng);
  bad.writeUInt32LE(999, 28 + 4); // the first IDB's length
  assert.throws(() => parseCapture(bad, 'bad.pcapng'), { message: /^bad\.pcapng: offset 28: bad block length 999/ });
});

test('writePcap output reads back frame for frame', () => {
  const frames = parseCapture(writePcap([{ data: eth, time: 12.25 }, { data: eth }], 1));
  assert.equal(frames.length, 2);
  assert.equal(frames[0].time, 12.25);
});
