/**
 * Capture reader: classic pcap (both byte orders, micro- and nanosecond
 * timestamps) and pcapng (SHB, IDB, EPB, SPB and the obsolete PB; several
 * sections and interfaces). Small and strict: a truncated or corrupt file, or a
 * link type the decoder does not know, is an error naming the file and the byte
 * offset where reading stopped.
 */
import * as fs from 'node:fs';
import { SUPPORTED_LINK_TYPES } from '../decode/reference';

export interface Frame {
  /** 0-based position in the file. */
  index: number;
  linkType: number;
  /** Seconds since the epoch (fractional). */
  time: number;
  /** Length on the wire; data.length is what was captured. */
  originalLength: number;
  data: Uint8Array;
}

export class CaptureError extends Error {
  constructor(readonly file: string, readonly offset: number, message: string) {
    super(`${file}: offset ${offset}: ${message}`);
    this.name = 'CaptureError';
  }
}

export const LINK_TYPE_NAMES: Record<number, string> = {
  0: 'BSD loopback', 1: 'Ethernet', 9: 'PPP', 50: 'PPP (HDLC)', 101: 'raw IP', 108: 'OpenBSD loopback',
  113: 'Linux cooked (SLL)', 228: 'raw IPv4', 229: 'raw IPv6', 276: 'Linux cooked (SLL2)',
};

/** The link type proper: the low 16 bits (the upper ones carry FCS information). */
function linkTypeOf(file: string, offset: number, field: number, extra: readonly number[] = []): number {
  const lt = field & 0xffff;
  if (!SUPPORTED_LINK_TYPES.includes(lt) && !extra.includes(lt)) {
    throw new CaptureError(file, offset, `unsupported link type ${lt} (supported: ${SUPPORTED_LINK_TYPES.join(', ')})`);
  }
  return lt;
}

/** Read every frame of a capture file. */
export function readCapture(file: string): Frame[] {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new CaptureError(file, 0, `cannot read: ${(err as Error).message}`);
  }
  return parseCapture(bytes, file);
}

/** Parse capture bytes (the name is used in error messages only). */
export interface ParseOptions {
  /** Link types to accept beyond those the decoder reads (the caller parses them itself). */
  allowLinkTypes?: readonly number[];
}

export function parseCapture(bytes: Uint8Array, file = '<capture>', options: ParseOptions = {}): Frame[] {
  if (bytes.length < 4) throw new CaptureError(file, 0, 'file too short to be a capture');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const extra = options.allowLinkTypes ?? [];
  if (magic === 0x0a0d0d0a) return parsePcapng(bytes, view, file, extra);
  return parsePcap(bytes, view, file, extra);
}

function parsePcap(bytes: Uint8Array, view: DataView, file: string, extra: readonly number[]): Frame[] {
  const magicBE = view.getUint32(0, false);
  const magicLE = view.getUint32(0, true);
  let little: boolean;
  let nano: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) { little = true; nano = magicLE === 0xa1b23c4d; }
  else if (magicBE === 0xa1b2c3d4 || magicBE === 0xa1b23c4d) { little = false; nano = magicBE === 0xa1b23c4d; }
  else throw new CaptureError(file, 0, `not a pcap or pcapng file (magic 0x${magicBE.toString(16).padStart(8, '0')})`);
  if (bytes.length < 24) throw new CaptureError(file, bytes.length, 'truncated pcap file header (24 bytes needed)');
  const linkType = linkTypeOf(file, 20, view.getUint32(20, little), extra);
  const frames: Frame[] = [];
  let at = 24;
  while (at < bytes.length) {
    if (bytes.length - at < 16) throw new CaptureError(file, at, `truncated record header (${bytes.length - at} of 16 bytes)`);
    const sec = view.getUint32(at, little);
    const frac = view.getUint32(at + 4, little);
    const caplen = view.getUint32(at + 8, little);
    const origlen = view.getUint32(at + 12, little);
    if (caplen > bytes.length - at - 16) {
      throw new CaptureError(file, at, `record of ${caplen} bytes runs past the end of the file (${bytes.length - at - 16} left)`);
    }
    frames.push({
      index: frames.length,
      linkType,
      time: sec + frac / (nano ? 1e9 : 1e6),
      originalLength: origlen,
      data: bytes.subarray(at + 16, at + 16 + caplen),
    });
    at += 16 + caplen;
  }
  return frames;
}

interface Interface { linkType: number; tsUnitsPerSecond: number }

function parsePcapng(bytes: Uint8Array, view: DataView, file: string, extra: readonly number[]): Frame[] {
  const frames: Frame[] = [];
  let little = true;
  let interfaces: Interface[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 12) throw new CaptureError(file, at, 'truncated block header');
    const typeBE = view.getUint32(at, false);
    if (typeBE === 0x0a0d0d0a) {
      const bom = view.getUint32(at + 8, true);
      if (bom === 0x1a2b3c4d) little = true;
      else if (bom === 0x4d3c2b1a) little = false;
      else throw new CaptureError(file, at + 8, 'bad byte-order magic in section header block');
      interfaces = [];
    }
    const type = view.getUint32(at, little);
    const length = view.getUint32(at + 4, little);
    if (length < 12 || length % 4 !== 0 || length > bytes.length - at) {
      throw new CaptureError(file, at, `bad block length ${length} for block type 0x${type.toString(16)}`);
    }
    if (view.getUint32(at + length - 4, little) !== length) {
      throw new CaptureError(file, at + length - 4, 'trailing block length does not match the leading one');
    }
    const body = at + 8;
    const bodyEnd = at + length - 4;
    switch (type) {
      case 0x00000001: { // interface description
        if (bodyEnd - body < 8) throw new CaptureError(file, at, 'truncated interface description block');
        const linkType = linkTypeOf(file, body, view.getUint16(body, little), extra);
        interfaces.push({ linkType, tsUnitsPerSecond: tsResolution(view, body + 8, bodyEnd, little) });
        break;
      }
      case 0x00000006: // enhanced packet
      case 0x00000002: { // obsolete packet block
        if (bodyEnd - body < 20) throw new CaptureError(file, at, 'truncated packet block');
        const ifid = type === 6 ? view.getUint32(body, little) : view.getUint16(body, little);
        const iface = interfaces[ifid];
        if (!iface) throw new CaptureError(file, at, `packet names interface ${ifid}, which has no description block`);
        const high = view.getUint32(body + 4, little);
        const low = view.getUint32(body + 8, little);
        const caplen = view.getUint32(body + 12, little);
        const origlen = view.getUint32(body + 16, little);
        if (caplen > bodyEnd - body - 20) throw new CaptureError(file, at, `captured length ${caplen} runs past its block`);
        frames.push({
          index: frames.length,
          linkType: iface.linkType,
          time: (high * 4294967296 + low) / iface.tsUnitsPerSecond,
          originalLength: origlen,
          data: bytes.subarray(body + 20, body + 20 + caplen),
        });
        break;
      }
      case 0x00000003: { // simple packet
        if (bodyEnd - body < 4) throw new CaptureError(file, at, 'truncated simple packet block');
        const iface = interfaces[0];
        if (!iface) throw new CaptureError(file, at, 'simple packet block before any interface description block');
        const origlen = view.getUint32(body, little);
        const caplen = Math.min(origlen, bodyEnd - body - 4);
        frames.push({ index: frames.length, linkType: iface.linkType, time: 0, originalLength: origlen, data: bytes.subarray(body + 4, body + 4 + caplen) });
        break;
      }
      default:
        break; // section header, statistics, name resolution, custom...: nothing to decode
    }
    at += length;
  }
  return frames;
}

/** if_tsresol (option 9): units per second; default microseconds. */
function tsResolution(view: DataView, at: number, end: number, little: boolean): number {
  while (at + 4 <= end) {
    const code = view.getUint16(at, little);
    const len = view.getUint16(at + 2, little);
    if (code === 0) break;
    if (code === 9 && len >= 1 && at + 5 <= end) {
      const v = view.getUint8(at + 4);
      return v & 0x80 ? 2 ** (v & 0x7f) : 10 ** (v & 0x7f);
    }
    at += 4 + Math.ceil(len / 4) * 4;
  }
  return 1e6;
}

/** Write frames as a classic little-endian microsecond pcap (tests and generated captures). */
export function writePcap(frames: readonly { data: Uint8Array; time?: number }[], linkType: number): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(linkType, 20);
  parts.push(header);
  for (const f of frames) {
    const rec = Buffer.alloc(16);
    const t = f.time ?? 0;
    rec.writeUInt32LE(Math.floor(t), 0);
    rec.writeUInt32LE(Math.round((t - Math.floor(t)) * 1e6), 4);
    rec.writeUInt32LE(f.data.length, 8);
    rec.writeUInt32LE(f.data.length, 12);
    parts.push(rec, Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength));
  }
  return Buffer.concat(parts);
}
