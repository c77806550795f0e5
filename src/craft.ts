/**
 * The traffic generator of `nfsieve bench` (and of the demo's frames): a
 * seeded random generator of well-formed IPv4 and IPv6 packets with the
 * headers the classifier reads (extension headers, AH, fragments, UDP/TCP,
 * ICMP, ESP, IKE on 500, NAT-T on 4500). Link-layer framing, mutations and
 * the header-chain generators are test tooling (test/support/packets.ts,
 * test/support/headers.ts).
 */

/** sfc32 PRNG: small, fast, good statistics, reproducible from a 32-bit seed. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;
  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = seed >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Integer in [0, n). */
  int(n: number): number { return n <= 1 ? 0 : this.u32() % n; }
  chance(p: number): boolean { return this.u32() / 4294967296 < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

const be16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];
const be32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

export interface PacketSpec {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  ttl?: number;
  /** IPv4 fragment: offset in 8-byte units and MF; IPv6 adds a fragment header. */
  fragOffset?: number;
  moreFragments?: boolean;
  /** IPv6 extension headers (0, 43, 60) placed before the upper layer. */
  extHeaders?: number[];
  /** AH SPI: an AH header sits before the upper layer. */
  ahSpi?: number;
  /** The upper-layer header and payload, already built. */
  upper: Uint8Array;
  /** IPv4 options length in bytes (multiple of 4). */
  optionsLength?: number;
}

export function udp(sport: number, dport: number, payload: Uint8Array): Uint8Array {
  return new Uint8Array([...be16(sport), ...be16(dport), ...be16(8 + payload.length), 0, 0, ...payload]);
}

export function tcp(sport: number, dport: number, flags = 0x02): Uint8Array {
  return new Uint8Array([...be16(sport), ...be16(dport), ...be32(1), ...be32(0), 0x50, flags, ...be16(65535), 0, 0, 0, 0]);
}

export function icmp(type: number, code: number, rest: Uint8Array = new Uint8Array(4)): Uint8Array {
  return new Uint8Array([type, code, 0, 0, ...rest]);
}

export function esp(spi: number, seq: number, payloadLength = 16): Uint8Array {
  return new Uint8Array([...be32(spi), ...be32(seq), ...new Uint8Array(payloadLength)]);
}

export interface IkeSpec { ispi?: Uint8Array; rspi?: Uint8Array; nextPayload?: number; version?: number; exchange: number; flags: number; msgid?: number; bodyLength?: number }

export function ikeHeader(s: IkeSpec): Uint8Array {
  const body = s.bodyLength ?? 0;
  return new Uint8Array([
    ...(s.ispi ?? new Uint8Array(8)), ...(s.rspi ?? new Uint8Array(8)), s.nextPayload ?? 33, s.version ?? 0x20,
    s.exchange, s.flags, ...be32(s.msgid ?? 0), ...be32(28 + body), ...new Uint8Array(body),
  ]);
}

/** Build the IP packet bytes. */
export function ipPacket(s: PacketSpec): Uint8Array {
  let upper = s.upper;
  let next = s.proto;
  if (s.ahSpi !== undefined) {
    // AH with a 12-byte ICV: length field (6 words total) - 2 = 4.
    upper = new Uint8Array([next, 4, 0, 0, ...be32(s.ahSpi), ...be32(1), ...new Uint8Array(12), ...upper]);
    next = 51;
  }
  if (s.family === 4) {
    const opt = s.optionsLength ?? 0;
    const ihl = 20 + opt;
    const total = ihl + upper.length;
    const frag = ((s.moreFragments ? 0x2000 : 0) | ((s.fragOffset ?? 0) & 0x1fff));
    const h = [0x40 | (ihl / 4), 0, ...be16(total), 0x12, 0x34, ...be16(frag), s.ttl ?? 64, next, 0, 0, ...s.src, ...s.dst, ...new Array<number>(opt).fill(1)];
    return new Uint8Array([...h, ...upper]);
  }
  // IPv6: extension headers chain, then an optional fragment header.
  const types = [...(s.extHeaders ?? [])];
  if (s.fragOffset !== undefined || s.moreFragments) types.push(44);
  let body: number[] = [...upper];
  for (let i = types.length - 1; i >= 0; i--) {
    const t = types[i];
    if (t === 44) body = [next, 0, ...be16(((s.fragOffset ?? 0) << 3) | (s.moreFragments ? 1 : 0)), 0, 0, 0, 1, ...body];
    else body = [next, 0, 1, 4, 0, 0, 0, 0, ...body]; // 8 bytes: PadN option
    next = t;
  }
  return new Uint8Array([0x60, 0, 0, 0, ...be16(body.length), next, s.ttl ?? 64, ...s.src, ...s.dst, ...body]);
}

function address(rng: Rng, family: 4 | 6): Uint8Array {
  if (family === 4) return new Uint8Array([10, rng.int(4), rng.int(4), 1 + rng.int(8)]);
  const a = new Uint8Array(16);
  a[0] = 0xfd; a[15] = 1 + rng.int(8);
  if (rng.chance(0.3)) a.set(rng.bytes(6), 8);
  return a;
}

/** A random upper layer for the protocol, biased towards the IPsec ports. */
export function randomUpper(rng: Rng, family: 4 | 6): { proto: number; upper: Uint8Array } {
  const kind = rng.int(8);
  const port = (): number => rng.pick([500, 4500, 53, 1701, 33434 + rng.int(200), rng.int(65536)]);
  const ike = (): Uint8Array => ikeHeader({ ispi: rng.bytes(8), rspi: rng.chance(0.5) ? new Uint8Array(8) : rng.bytes(8), version: rng.pick([0x10, 0x20, 0x20]), exchange: rng.pick([2, 4, 5, 32, 34, 35, 36, 37]), flags: rng.pick([0, 1, 0x08, 0x20, 0x28]), msgid: rng.int(4), bodyLength: rng.int(40) });
  switch (kind) {
    case 0: return { proto: 17, upper: udp(rng.pick([500, port()]), 500, ike()) };
    case 1: {
      const payload = rng.pick([
        new Uint8Array([0xff]),
        new Uint8Array([0, 0, 0, 0, ...ike()]),
        esp(1 + rng.int(0xfffffffe), rng.int(1000)),
      ]);
      return { proto: 17, upper: udp(4500, rng.pick([4500, port()]), payload) };
    }
    case 2: return { proto: 17, upper: udp(port(), port(), rng.bytes(rng.int(32))) };
    case 3: return { proto: 6, upper: tcp(port(), port()) };
    case 4: return { proto: family === 4 ? 1 : 58, upper: icmp(rng.pick([0, 3, 5, 8, 11, 128, 129, 135]), rng.int(5)) };
    case 5: return { proto: 50, upper: esp(rng.u32(), rng.int(100)) };
    case 6: return { proto: rng.pick([47, 89, 132, 59, 135]), upper: rng.bytes(rng.int(24)) };
    default: return { proto: 17, upper: udp(port(), port(), rng.bytes(rng.int(8))) };
  }
}

/** A random well-formed IP packet. */
export function randomIpPacket(rng: Rng): Uint8Array {
  const family = rng.chance(0.6) ? 4 : 6;
  const { proto, upper } = randomUpper(rng, family);
  const spec: PacketSpec = { family, src: address(rng, family), dst: address(rng, family), proto, upper, ttl: 1 + rng.int(255) };
  if (rng.chance(0.1)) spec.ahSpi = rng.pick([0x100, rng.u32()]);
  if (rng.chance(0.1)) { spec.fragOffset = rng.chance(0.5) ? 0 : 1 + rng.int(100); spec.moreFragments = rng.chance(0.7); }
  if (family === 6 && rng.chance(0.2)) spec.extHeaders = Array.from({ length: 1 + rng.int(3) }, () => rng.pick([0, 43, 60]));
  if (family === 4 && rng.chance(0.05)) spec.optionsLength = 4 * (1 + rng.int(10));
  return ipPacket(spec);
}
