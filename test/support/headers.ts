/**
 * Header-chain packets at their boundaries (test-only generator): IPv6 with
 * any order of hop-by-hop, routing, destination options, fragment, AH and
 * ESP headers, repeated, and every length field at its edges (0, 1, just
 * under and over the fixed size, past the end of the packet); IPv4 with IHL,
 * total length, UDP length and AH length at theirs. The kernel comparison
 * and the decoder and importer property tests draw from it, so orders and
 * lengths the well-formed generator (src/craft.ts) never builds are covered.
 */
import { Rng, randomUpper, udp, tcp, icmp } from '../../src/craft';

const HOP = 0, ROUTING = 43, FRAGMENT = 44, ESP = 50, AH = 51, DSTOPTS = 60;
const EXT = [HOP, ROUTING, FRAGMENT, AH, DSTOPTS, ESP] as const;

export interface ChainOptions {
  /** Keep every length the kernel's IP layer checks consistent (payload/total length, IHL, checksum left to the caller). */
  deliverable?: boolean;
}

const be16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];

/** A length field at a boundary: mostly 0 and 1, sometimes the usual size, sometimes far too big. */
function lengthField(rng: Rng, usual: number): number {
  return rng.pick([0, 0, 1, 1, 2, usual, usual, 3 + rng.int(4), 200 + rng.int(56)]);
}

/** One extension header with the given next header, its body padded to what its length field says. */
function extHeader(rng: Rng, type: number, next: number): number[] {
  switch (type) {
    case FRAGMENT: {
      const offset = rng.pick([0, 0, 1, 2 + rng.int(8000)]);
      const more = rng.chance(0.5) ? 1 : 0;
      return [next, 0, ...be16((offset << 3) | more), ...be16(rng.int(65536)), ...be16(rng.int(65536))];
    }
    case AH: {
      const len = lengthField(rng, 4);
      const bytes = Math.max(8, (len + 2) * 4);
      const h = [next, len, 0, 0, 0, 0, rng.pick([1, 0xff]), 0, 0, 0, 0, 1];
      // A huge length is left unpadded: it runs into what follows, or past the end.
      while (h.length < bytes && len < 200) h.push(0);
      return h.slice(0, Math.min(bytes, h.length));
    }
    case ROUTING: {
      const len = lengthField(rng, 2);
      const h = [next, len, rng.pick([0, 2, 4, 253]), rng.int(3), 0, 0, 0, 0];
      while (h.length < (len + 1) * 8 && len < 200) h.push(0);
      return h;
    }
    default: { // hop-by-hop, destination options: PadN to the declared length
      const len = lengthField(rng, 0);
      if (len >= 200) return [next, len, 1, 4, 0, 0, 0, 0];
      const bytes = (len + 1) * 8;
      return [next, len, 1, bytes - 4, ...new Array<number>(bytes - 4).fill(0)];
    }
  }
}

/** A random upper layer, or a bare one cut at its own boundaries. */
function upper(rng: Rng, family: 4 | 6): { proto: number; bytes: number[] } {
  const u = randomUpper(rng, family);
  let bytes = [...u.upper];
  if (u.proto === 17 && rng.chance(0.3)) {
    const ulen = rng.pick([0, 7, 8, bytes.length - 1, bytes.length + 1, 65535]);
    bytes[4] = (ulen >> 8) & 0xff; bytes[5] = ulen & 0xff;
  }
  if (rng.chance(0.1)) bytes = [...rng.pick([udp(500, 500, new Uint8Array(0)), tcp(4500, 22), icmp(family === 4 ? 8 : 128, 0)])];
  return { proto: u.proto, bytes };
}

/** IPv6 payload: a random chain of 0-6 extension headers in any order, then an upper layer (or ESP / 59). */
export function randomIpv6Chain(rng: Rng): { next: number; payload: number[] } {
  const types = Array.from({ length: rng.int(7) }, () => rng.pick(EXT));
  const esp = types.indexOf(ESP);
  if (esp >= 0) types.length = esp + 1; // ESP ends the chain: what follows is encrypted
  const u = upper(rng, 6);
  let next = types[types.length - 1] === ESP ? ESP : rng.chance(0.05) ? 59 : u.proto;
  let body: number[] = next === ESP ? [...be16(rng.int(65536)), ...be16(rng.int(65536)), 0, 0, 0, 1, ...rng.bytes(rng.int(20))] : next === 59 ? [...rng.bytes(rng.int(8))] : u.bytes;
  for (let i = types.length - 1; i >= 0; i--) {
    if (types[i] === ESP) continue;
    body = [...extHeader(rng, types[i], next), ...body];
    next = types[i];
  }
  return { next, payload: body };
}

/** Cut a packet at a boundary-biased point after `from`: a header start plus 0-12 bytes, or anywhere. */
export function cutNear(rng: Rng, bytes: number[], from: number): number[] {
  if (bytes.length <= from) return bytes;
  const at = rng.chance(0.6) ? from + rng.pick([0, 1, 2, 3, 4, 7, 8, 11, 12, 16]) : from + rng.int(bytes.length - from + 1);
  return bytes.slice(0, Math.min(bytes.length, at));
}

/**
 * A raw IP packet from the chain generator. With `deliverable`, the IP
 * header's own lengths are ones the kernel accepts (the caller fixes the
 * IPv4 checksum and its sequence number); otherwise they are at their
 * boundaries too.
 */
export function randomChainPacket(rng: Rng, family: 4 | 6, src: Uint8Array, dst: Uint8Array, opts: ChainOptions = {}): Uint8Array {
  if (family === 6) {
    const { next, payload } = randomIpv6Chain(rng);
    let body = rng.chance(0.3) ? cutNear(rng, payload, 0) : payload;
    let plen = body.length;
    if (rng.chance(0.2)) {
      if (opts.deliverable) body = [...body, ...new Array<number>(1 + rng.int(8)).fill(0)]; // padding past the payload length
      else plen = rng.pick([0, Math.max(0, plen - 1), plen + 1, 65535]);
    }
    if (opts.deliverable && plen === 0) plen = body.length; // 0 means "jumbo" to the decoder, "40 bytes" to the kernel
    return new Uint8Array([0x60, 0, 0, 0, ...be16(plen), next, 64, ...src, ...dst, ...body]);
  }
  // IPv4: options (NOPs), then AH chains of boundary lengths, then an upper layer.
  const words = rng.chance(0.2) ? 1 + rng.int(10) : 0;
  const ihlField = opts.deliverable ? 5 + words : rng.pick([5 + words, 5 + words, 4, 15, 0]);
  const u = upper(rng, 4);
  let proto = u.proto;
  let body = u.bytes;
  for (let k = rng.chance(0.3) ? 1 + rng.int(2) : 0; k > 0; k--) {
    body = [...extHeader(rng, AH, proto), ...body];
    proto = AH;
  }
  if (rng.chance(0.3)) body = cutNear(rng, body, 0);
  const options = new Array<number>(words * 4).fill(1);
  const actual = 20 + options.length + body.length;
  let total = actual;
  if (rng.chance(0.2)) {
    if (opts.deliverable) body = [...body, ...new Array<number>(1 + rng.int(8)).fill(0)];
    else total = rng.pick([0, 19, 20 + options.length - 1, actual - 1, actual + 1, 65535]);
  }
  const frag = rng.chance(0.1) ? rng.pick([0x2000, 1, 0x2001, 185]) : 0;
  return new Uint8Array([0x40 | (ihlField & 15), 0, ...be16(total), 0, 0, ...be16(frag), 64, proto, 0, 0, ...src, ...dst, ...options, ...body]);
}

/** Addresses for generated packets when the caller does not care. */
export function someAddress(rng: Rng, family: 4 | 6): Uint8Array {
  if (family === 4) return new Uint8Array([10, rng.int(4), rng.int(4), 1 + rng.int(8)]);
  const a = new Uint8Array(16);
  a[0] = 0xfd; a[15] = 1 + rng.int(8);
  return a;
}
