/**
 * Capture reader: classic pcap (both byte orders, micro- and nanosecond
 * timestamps) and pcapng (SHB, IDB, EPB, SPB and the obsolete PB; several
 * sections and interfaces). Small and strict: a truncated or corrupt file, or a
 * link type the decoder does not know, is an error naming the file and the byte
 * offset where reading stopped. Parsing is incremental (CaptureParser), so
 * files and stdin are read in chunks: streamCapture() runs in constant memory
 * and yields every complete frame before it reports a cut.
 */
import * as fs from 'node:fs';
import { LinkType } from '../wire';
import { SUPPORTED_LINK_TYPES } from '../decode/reference';
import { NfsieveError } from '../errors';

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

/** A capture that cannot be read or was cut short (code ECAPTURE), with the byte offset. */
export class CaptureError extends NfsieveError {
  constructor(override readonly file: string, readonly offset: number, message: string) {
    super('ECAPTURE', `${file}: offset ${offset}: ${message}`, { file });
    this.name = 'CaptureError';
  }
}

export const LINK_TYPE_NAMES: Record<number, string> = {
  [LinkType.Null]: 'BSD loopback', [LinkType.Ethernet]: 'Ethernet', [LinkType.Ppp]: 'PPP', [LinkType.PppHdlc]: 'PPP (HDLC)',
  [LinkType.Raw]: 'raw IP', [LinkType.Loop]: 'OpenBSD loopback', [LinkType.LinuxSll]: 'Linux cooked (SLL)',
  [LinkType.Ipv4]: 'raw IPv4', [LinkType.Ipv6]: 'raw IPv6', [LinkType.LinuxSll2]: 'Linux cooked (SLL2)',
};

/** The link type proper: the low 16 bits (the upper ones carry FCS information). */
function linkTypeOf(file: string, offset: number, field: number, extra: readonly number[] = []): number {
  const lt = field & 0xffff;
  if (!SUPPORTED_LINK_TYPES.includes(lt) && !extra.includes(lt)) {
    throw new CaptureError(file, offset, `unsupported link type ${lt} (supported: ${SUPPORTED_LINK_TYPES.join(', ')})`);
  }
  return lt;
}

/** Link types to accept beyond those the decoder reads (the caller parses them itself). */
export interface ParseOptions {
  allowLinkTypes?: readonly number[];
}

/** Read size of the file readers: memory stays about one chunk plus one record. */
export const READ_CHUNK = 1 << 20;
/** No capture record or block is larger (libpcap's snapshot length is at most 256 KiB). */
export const MAX_RECORD = 64 << 20;

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAP_HEADER = 24;
const PCAP_RECORD_HEADER = 16;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;
const PCAPNG_BOM_SWAPPED = 0x4d3c2b1a;
const PCAPNG_BLOCK_MIN = 12;
const BLOCK_IDB = 0x00000001;
const BLOCK_PB = 0x00000002;
const BLOCK_SPB = 0x00000003;
const BLOCK_EPB = 0x00000006;

/** Read every frame of a capture file (in chunks: a file larger than a Buffer works). */
export function readCapture(file: string, options: ParseOptions = {}): Frame[] {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new CaptureError(file, 0, `cannot read: ${(err as Error).message}`);
  }
  const parser = new CaptureParser(file, options);
  const frames: Frame[] = [];
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(READ_CHUNK);
      const n = fs.readSync(fd, chunk, 0, READ_CHUNK, null);
      if (n === 0) break;
      for (const f of parser.push(chunk.subarray(0, n))) frames.push(f);
    }
  } finally {
    fs.closeSync(fd);
  }
  parser.end();
  return frames;
}

/**
 * Stream the frames of a capture file, or of stdin for '-', in batches, in
 * constant memory. Every complete frame is yielded before a truncation or
 * corruption is thrown as a CaptureError.
 */
export async function* streamCapture(source: string, options: ParseOptions = {}): AsyncGenerator<Frame[]> {
  const name = source === '-' ? '<stdin>' : source;
  const input = source === '-' ? process.stdin : fs.createReadStream(source, { highWaterMark: READ_CHUNK });
  const parser = new CaptureParser(name, options);
  try {
    for await (const chunk of input) {
      const frames = parser.push(chunk as Buffer);
      if (frames.length) yield frames;
      if (parser.failed) break;
    }
  } catch (err) {
    if (err instanceof CaptureError) throw err;
    throw new CaptureError(name, parser.offset, `cannot read: ${(err as Error).message}`);
  } finally {
    if (source !== '-') (input as fs.ReadStream).destroy();
  }
  parser.end();
}

/** Parse capture bytes (the name is used in error messages only). */
export function parseCapture(bytes: Uint8Array, file = '<capture>', options: ParseOptions = {}): Frame[] {
  const parser = new CaptureParser(file, options);
  const frames = parser.push(bytes);
  parser.end();
  return frames;
}

interface Interface { linkType: number; tsUnitsPerSecond: number }

/**
 * Incremental capture parser: push() bytes as they arrive, get the frames
 * completed so far; end() throws when the input stopped inside a header,
 * record or block. An error found inside a chunk keeps the frames before it:
 * push() returns them and the error is thrown by the next push() or end().
 */
export class CaptureParser {
  /** Set once the input is known to be bad; thrown by the next push() or end(). */
  failed: CaptureError | null = null;
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private at = 0;
  /** Offset in the input of buf[0]. */
  private base = 0;
  private format: 'pcap' | 'pcapng' | null = null;
  private little = true;
  private nano = false;
  private linkType = 0;
  private interfaces: Interface[] = [];
  private count = 0;
  private readonly extra: readonly number[];

  constructor(readonly file: string, options: ParseOptions = {}) {
    this.extra = options.allowLinkTypes ?? [];
  }

  /** Offset in the input where parsing stands. */
  get offset(): number { return this.base + this.at; }

  push(chunk: Uint8Array): Frame[] {
    if (this.failed) throw this.failed;
    const rest = this.buf.length - this.at;
    if (rest === 0) this.buf = chunk;
    else {
      const joined = new Uint8Array(rest + chunk.length);
      joined.set(this.buf.subarray(this.at));
      joined.set(chunk, rest);
      this.buf = joined;
    }
    this.base += this.at;
    this.at = 0;
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    const frames: Frame[] = [];
    try {
      if (this.format === null) this.header();
      if (this.format === 'pcap') while (this.pcapRecord(frames));
      else if (this.format === 'pcapng') while (this.pcapngBlock(frames));
    } catch (err) {
      if (!(err instanceof CaptureError)) throw err;
      this.failed = err;
    }
    return frames;
  }

  end(): void {
    if (this.failed) throw this.failed;
    const left = this.buf.length - this.at;
    if (this.format === null) {
      if (left < 4) this.fail(0, 'file too short to be a capture');
      this.fail(left, `truncated pcap file header (${PCAP_HEADER} bytes needed)`);
    }
    if (left === 0) return;
    if (this.format === 'pcap') {
      if (left < PCAP_RECORD_HEADER) this.fail(this.at, `truncated record header (${left} of ${PCAP_RECORD_HEADER} bytes)`);
      const caplen = this.view.getUint32(this.at + 8, this.little);
      this.fail(this.at, `record of ${caplen} bytes runs past the end of the file (${left - PCAP_RECORD_HEADER} left)`);
    }
    if (left < PCAPNG_BLOCK_MIN) this.fail(this.at, 'truncated block header');
    const little = this.view.getUint32(this.at, false) === PCAPNG_SHB ? this.shbLittle(this.at) : this.little;
    this.fail(this.at, `bad block length ${this.view.getUint32(this.at + 4, little)} for block type 0x${this.view.getUint32(this.at, little).toString(16)}`);
  }

  private fail(at: number, message: string): never {
    throw new CaptureError(this.file, this.base + at, message);
  }

  /** Decide the format from the first bytes; reads the pcap file header. */
  private header(): void {
    if (this.buf.length < 4) return;
    const magicBE = this.view.getUint32(0, false);
    if (magicBE === PCAPNG_SHB) { this.format = 'pcapng'; return; }
    const magicLE = this.view.getUint32(0, true);
    if (magicLE === PCAP_MAGIC_US || magicLE === PCAP_MAGIC_NS) { this.little = true; this.nano = magicLE === PCAP_MAGIC_NS; }
    else if (magicBE === PCAP_MAGIC_US || magicBE === PCAP_MAGIC_NS) { this.little = false; this.nano = magicBE === PCAP_MAGIC_NS; }
    else this.fail(0, `not a pcap or pcapng file (magic 0x${magicBE.toString(16).padStart(8, '0')})`);
    if (this.buf.length < PCAP_HEADER) return;
    this.linkType = linkTypeOf(this.file, this.base + 20, this.view.getUint32(20, this.little), this.extra);
    this.format = 'pcap';
    this.at = PCAP_HEADER;
  }

  /** One pcap record into `frames`; false when the buffer holds no complete one. */
  private pcapRecord(frames: Frame[]): boolean {
    const at = this.at;
    if (this.buf.length - at < PCAP_RECORD_HEADER) return false;
    const caplen = this.view.getUint32(at + 8, this.little);
    if (caplen > MAX_RECORD) this.fail(at, `record of ${caplen} bytes is larger than any capture record (at most ${MAX_RECORD})`);
    if (caplen > this.buf.length - at - PCAP_RECORD_HEADER) return false;
    const sec = this.view.getUint32(at, this.little);
    const frac = this.view.getUint32(at + 4, this.little);
    frames.push({
      index: this.count++,
      linkType: this.linkType,
      time: sec + frac / (this.nano ? 1e9 : 1e6),
      originalLength: this.view.getUint32(at + 12, this.little),
      data: this.buf.subarray(at + PCAP_RECORD_HEADER, at + PCAP_RECORD_HEADER + caplen),
    });
    this.at = at + PCAP_RECORD_HEADER + caplen;
    return true;
  }

  private shbLittle(at: number): boolean {
    const bom = this.view.getUint32(at + 8, true);
    if (bom === PCAPNG_BOM) return true;
    if (bom === PCAPNG_BOM_SWAPPED) return false;
    this.fail(at + 8, 'bad byte-order magic in section header block');
  }

  /** One pcapng block (frames into `frames`); false when the buffer holds no complete one. */
  private pcapngBlock(frames: Frame[]): boolean {
    const at = this.at;
    if (this.buf.length - at < PCAPNG_BLOCK_MIN) return false;
    const shb = this.view.getUint32(at, false) === PCAPNG_SHB;
    const little = shb ? this.shbLittle(at) : this.little;
    const type = this.view.getUint32(at, little);
    const length = this.view.getUint32(at + 4, little);
    if (length < PCAPNG_BLOCK_MIN || length % 4 !== 0 || length > MAX_RECORD) {
      this.fail(at, `bad block length ${length} for block type 0x${type.toString(16)}`);
    }
    if (length > this.buf.length - at) return false;
    if (shb) { this.little = little; this.interfaces = []; }
    if (this.view.getUint32(at + length - 4, little) !== length) {
      this.fail(at + length - 4, 'trailing block length does not match the leading one');
    }
    this.blockBody(type, at, at + 8, at + length - 4, frames);
    this.at = at + length;
    return true;
  }

  private blockBody(type: number, at: number, body: number, bodyEnd: number, frames: Frame[]): void {
    const view = this.view;
    const little = this.little;
    switch (type) {
      case BLOCK_IDB: {
        if (bodyEnd - body < 8) this.fail(at, 'truncated interface description block');
        const linkType = linkTypeOf(this.file, this.base + body, view.getUint16(body, little), this.extra);
        this.interfaces.push({ linkType, tsUnitsPerSecond: tsResolution(view, body + 8, bodyEnd, little) });
        return;
      }
      case BLOCK_EPB:
      case BLOCK_PB: {
        if (bodyEnd - body < 20) this.fail(at, 'truncated packet block');
        const ifid = type === BLOCK_EPB ? view.getUint32(body, little) : view.getUint16(body, little);
        const iface = this.interfaces[ifid];
        if (!iface) this.fail(at, `packet names interface ${ifid}, which has no description block`);
        const high = view.getUint32(body + 4, little);
        const low = view.getUint32(body + 8, little);
        const caplen = view.getUint32(body + 12, little);
        const origlen = view.getUint32(body + 16, little);
        if (caplen > bodyEnd - body - 20) this.fail(at, `captured length ${caplen} runs past its block`);
        frames.push({
          index: this.count++, linkType: iface.linkType, time: (high * 4294967296 + low) / iface.tsUnitsPerSecond,
          originalLength: origlen, data: this.buf.subarray(body + 20, body + 20 + caplen),
        });
        return;
      }
      case BLOCK_SPB: {
        if (bodyEnd - body < 4) this.fail(at, 'truncated simple packet block');
        const iface = this.interfaces[0];
        if (!iface) this.fail(at, 'simple packet block before any interface description block');
        const origlen = view.getUint32(body, little);
        const caplen = Math.min(origlen, bodyEnd - body - 4);
        frames.push({ index: this.count++, linkType: iface.linkType, time: 0, originalLength: origlen, data: this.buf.subarray(body + 4, body + 4 + caplen) });
        return;
      }
      default:
        return; // section header, statistics, name resolution, custom...: nothing to decode
    }
  }
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
