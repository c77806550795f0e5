/**
 * strongSwan's vici wire format, as pure functions: the transport framing
 * (a 32-bit big-endian length, then that many bytes), the packet layer (a
 * type byte, a name for named types, a message for message-bearing types) and
 * the message encoding (a flat sequence of typed elements that builds a tree
 * of sections, key/values and lists). Learnt from the protocol description in
 * strongSwan's src/libcharon/plugins/vici/README.md.
 *
 *   key1 = value1            3, 4,"key1", 0,6,"value1"        KEY_VALUE
 *   section1 {               1, 8,"section1"                  SECTION_START
 *     list1 = [ a ]          4, 5,"list1", 5, 0,1,"a", 6      LIST_START/ITEM/END
 *   }                        2                                SECTION_END
 *
 * Everything read is bounds-checked: malformed input throws a ViciError with
 * a code, never anything else.
 */

/** Packet types (the first byte of a transport segment). */
export const CMD_REQUEST = 0;
export const CMD_RESPONSE = 1;
export const CMD_UNKNOWN = 2;
export const EVENT_REGISTER = 3;
export const EVENT_UNREGISTER = 4;
export const EVENT_CONFIRM = 5;
export const EVENT_UNKNOWN = 6;
export const EVENT = 7;

/** Message element types. */
export const SECTION_START = 1;
export const SECTION_END = 2;
export const KEY_VALUE = 3;
export const LIST_START = 4;
export const LIST_ITEM = 5;
export const LIST_END = 6;

/** Bytes of the transport length header. */
export const FRAME_HEADER_BYTES = 4;
/** The largest segment charon sends or accepts (512 KiB of data). */
export const MAX_SEGMENT_BYTES = 512 * 1024;
/** Names carry an 8-bit length, values a 16-bit one. */
export const MAX_NAME_BYTES = 0xff;
export const MAX_VALUE_BYTES = 0xffff;

export type ViciErrorCode =
  | 'truncated' | 'bad-element' | 'unbalanced' | 'duplicate-key' | 'misplaced'
  | 'too-long' | 'bad-packet-type' | 'trailing-bytes' | 'empty-packet';

export class ViciError extends Error {
  constructor(readonly code: ViciErrorCode, message: string) {
    super(`vici: ${message}`);
    this.name = 'ViciError';
  }
}

/** A value is a raw blob (charon sends strings without a terminator). */
export type ViciValue = Buffer | Buffer[] | ViciSection;
/** A section, keys in wire order (names are unique within a section). */
export type ViciSection = Map<string, ViciValue>;

/** What encodeMessage takes: strings are written as UTF-8. */
export type ViciInputValue = string | Uint8Array | (string | Uint8Array)[] | ViciInput;
export interface ViciInput { [key: string]: ViciInputValue }

const NAMED_TYPES = new Set([CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT]);
const MESSAGE_TYPES = new Set([CMD_REQUEST, CMD_RESPONSE, EVENT]);

export interface ViciPacket {
  type: number;
  /** For CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER and EVENT. */
  name?: string;
  /** For CMD_REQUEST, CMD_RESPONSE and EVENT. */
  message?: ViciSection;
}

// ---- encoding --------------------------------------------------------------

class Writer {
  private parts: Buffer[] = [];
  byte(b: number): void { this.parts.push(Buffer.of(b)); }
  name(s: string): void {
    const b = Buffer.from(s, 'latin1');
    if (b.length > MAX_NAME_BYTES || Buffer.byteLength(s, 'utf8') !== b.length) {
      throw new ViciError('too-long', `name '${s.slice(0, 40)}' is not ASCII of at most ${MAX_NAME_BYTES} bytes`);
    }
    this.parts.push(Buffer.of(b.length), b);
  }
  value(v: string | Uint8Array): void {
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);
    if (b.length > MAX_VALUE_BYTES) throw new ViciError('too-long', `value of ${b.length} bytes (at most ${MAX_VALUE_BYTES})`);
    this.parts.push(Buffer.of(b.length >> 8, b.length & 0xff), b);
  }
  done(): Buffer { return Buffer.concat(this.parts); }
}

const isBlob = (v: unknown): v is string | Uint8Array => typeof v === 'string' || v instanceof Uint8Array;

function writeSection(w: Writer, entries: Iterable<[string, ViciInputValue | ViciValue]>): void {
  for (const [key, value] of entries) {
    if (isBlob(value)) {
      w.byte(KEY_VALUE); w.name(key); w.value(value);
    } else if (Array.isArray(value)) {
      w.byte(LIST_START); w.name(key);
      for (const item of value) { w.byte(LIST_ITEM); w.value(item); }
      w.byte(LIST_END);
    } else {
      w.byte(SECTION_START); w.name(key);
      writeSection(w, value instanceof Map ? value.entries() : Object.entries(value));
      w.byte(SECTION_END);
    }
  }
}

/** Encode a message tree (a Map or a plain object; strings or blobs as values). */
export function encodeMessage(message: ViciSection | ViciInput): Buffer {
  const w = new Writer();
  writeSection(w, message instanceof Map ? message.entries() : Object.entries(message));
  return w.done();
}

/** Encode a packet with its transport length header. */
export function encodePacket(packet: { type: number; name?: string; message?: ViciSection | ViciInput }): Buffer {
  const { type, name, message } = packet;
  if (type < CMD_REQUEST || type > EVENT || !Number.isInteger(type)) throw new ViciError('bad-packet-type', `packet type ${type}`);
  const w = new Writer();
  w.byte(type);
  if (NAMED_TYPES.has(type)) w.name(name ?? '');
  const body = Buffer.concat([w.done(), MESSAGE_TYPES.has(type) && message ? encodeMessage(message) : Buffer.alloc(0)]);
  if (body.length > MAX_SEGMENT_BYTES) throw new ViciError('too-long', `packet of ${body.length} bytes (at most ${MAX_SEGMENT_BYTES})`);
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

// ---- decoding --------------------------------------------------------------

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  get left(): number { return this.buf.length - this.pos; }
  byte(what: string): number {
    if (this.left < 1) throw new ViciError('truncated', `${what} cut short at byte ${this.pos}`);
    return this.buf[this.pos++];
  }
  bytes(n: number, what: string): Buffer {
    if (this.left < n) throw new ViciError('truncated', `${what} needs ${n} bytes at ${this.pos}, ${this.left} left`);
    const b = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return b;
  }
  name(what: string): string { return this.bytes(this.byte(`${what} length`), what).toString('latin1'); }
  value(what: string): Buffer {
    const hi = this.byte(`${what} length`), lo = this.byte(`${what} length`);
    return this.bytes((hi << 8) | lo, what);
  }
}

function put(section: ViciSection, key: string, value: ViciValue): void {
  if (section.has(key)) throw new ViciError('duplicate-key', `key '${key}' twice in one section`);
  section.set(key, value);
}

/** Decode a message (the bytes after a packet's type and name). */
export function decodeMessage(bytes: Uint8Array): ViciSection {
  const r = new Reader(bytes);
  const root: ViciSection = new Map();
  const stack: ViciSection[] = [root];
  let list: Buffer[] | null = null;
  while (r.left > 0) {
    const at = r.pos;
    const type = r.byte('element type');
    const top = stack[stack.length - 1];
    if (list && type !== LIST_ITEM && type !== LIST_END) throw new ViciError('misplaced', `element ${type} inside a list at byte ${at}`);
    switch (type) {
      case SECTION_START: {
        const s: ViciSection = new Map();
        put(top, r.name('section name'), s);
        stack.push(s);
        break;
      }
      case SECTION_END:
        if (stack.length === 1) throw new ViciError('unbalanced', `section end without a section at byte ${at}`);
        stack.pop();
        break;
      case KEY_VALUE: {
        const key = r.name('key');
        put(top, key, r.value(`value of '${key}'`));
        break;
      }
      case LIST_START:
        list = [];
        put(top, r.name('list name'), list);
        break;
      case LIST_ITEM:
        if (!list) throw new ViciError('misplaced', `list item outside a list at byte ${at}`);
        list.push(r.value('list item'));
        break;
      case LIST_END:
        if (!list) throw new ViciError('unbalanced', `list end without a list at byte ${at}`);
        list = null;
        break;
      default:
        throw new ViciError('bad-element', `unknown element type ${type} at byte ${at}`);
    }
  }
  if (list) throw new ViciError('unbalanced', 'a list is not closed');
  if (stack.length > 1) throw new ViciError('unbalanced', `${stack.length - 1} section(s) not closed`);
  return root;
}

/** Decode one packet (a transport segment's data, without the length header). */
export function decodePacket(bytes: Uint8Array): ViciPacket {
  const r = new Reader(bytes);
  if (r.left === 0) throw new ViciError('empty-packet', 'an empty segment');
  const type = r.byte('packet type');
  if (type > EVENT) throw new ViciError('bad-packet-type', `unknown packet type ${type}`);
  const packet: ViciPacket = { type };
  if (NAMED_TYPES.has(type)) packet.name = r.name('packet name');
  if (MESSAGE_TYPES.has(type)) packet.message = decodeMessage(bytes.subarray(r.pos));
  else if (r.left > 0) throw new ViciError('trailing-bytes', `${r.left} bytes after a packet of type ${type}`);
  return packet;
}

/**
 * Splits a byte stream into segments. push() returns the complete segments'
 * data; a length above MAX_SEGMENT_BYTES throws (the stream cannot be
 * resynchronised after that: close the connection).
 */
export class SegmentReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): Buffer[] {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : Buffer.from(chunk);
    const out: Buffer[] = [];
    while (this.pending.length >= FRAME_HEADER_BYTES) {
      const length = this.pending.readUInt32BE(0);
      if (length > MAX_SEGMENT_BYTES) throw new ViciError('too-long', `segment of ${length} bytes (at most ${MAX_SEGMENT_BYTES})`);
      if (this.pending.length < FRAME_HEADER_BYTES + length) break;
      out.push(this.pending.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length));
      this.pending = this.pending.subarray(FRAME_HEADER_BYTES + length);
    }
    return out;
  }

  /** Bytes of an incomplete segment still waiting. */
  get buffered(): number { return this.pending.length; }
}

/** A key's value as text, or undefined when absent or not a plain value. */
export function text(section: ViciSection | undefined, key: string): string | undefined {
  const v = section?.get(key);
  return Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
}

/** A sub-section, or undefined. */
export function subsection(section: ViciSection | undefined, key: string): ViciSection | undefined {
  const v = section?.get(key);
  return v instanceof Map ? v : undefined;
}
