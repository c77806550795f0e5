/**
 * The decoded view of one packet, shared by the native decoder (through its
 * 108-byte records, RECORD_SIZE) and the TypeScript reference decoder. Field names follow
 * the protocols: `spi` is the ESP SPI, `ah.spi` the AH SPI, `natt` the RFC 3948
 * kind of a UDP 4500 payload, `ike` the fixed IKE header.
 */
import { RECORD_SIZE, native } from '../native';
import { formatAddress } from './address';

export type Fragment = 'none' | 'first' | 'later';
export type NattKind = 'ike' | 'esp' | 'keepalive';

export interface IkeHeader {
  /** Major version nibble of byte 17: 1 (IKEv1/ISAKMP) or 2 (IKEv2). */
  version: number;
  /** Exchange type, byte 18 (IKEv2: 34 IKE_SA_INIT .. 37 INFORMATIONAL). */
  exchange: number;
  /** Flags, byte 19 (IKEv2: 0x08 initiator, 0x20 response). */
  flags: number;
  nextPayload: number;
  /** Initiator and responder SPI, 16 lower-case hex digits each. */
  ispi: string;
  rspi: string;
  msgid: number;
  length: number;
  /**
   * IKEv2: the notify message type of the first payload when that payload is
   * a Notify (41) whose fixed 8 bytes are present, else 0 (COOKIE, 16390,
   * there marks a retried IKE_SA_INIT, RFC 7296 section 2.6).
   */
  firstNotify: number;
}

export interface DecodedPacket {
  /** 4 or 6; null when the frame carries no readable IP header (ARP, truncated). */
  family: 4 | 6 | null;
  /** Addresses as raw bytes (4 or 16); null with family. */
  srcBytes: Uint8Array | null;
  dstBytes: Uint8Array | null;
  /** Upper-layer protocol: past IPv6 extension headers and AH, in both families. */
  proto: number | null;
  /** Protocol / next-header field of the IP header itself (51 for AH, 0 for hop-by-hop...). */
  ipProto: number | null;
  fragment: Fragment | null;
  ttl: number | null;
  totalLength: number | null;
  sport: number | null;
  dport: number | null;
  /** ESP SPI, for IP protocol 50 and ESP-in-UDP. */
  spi: number | null;
  espSeq: number | null;
  ah: { spi: number } | null;
  icmp: { type: number; code: number } | null;
  ike: IkeHeader | null;
  natt: NattKind | null;
  /** The first problem found (see docs/decoding.md), or null. */
  malformed: string | null;
  /** Offsets in the frame of the IP header and of the upper-layer header. */
  l3Offset: number;
  l4Offset: number;
  /** Fragment offset in 8-byte units (0 when not a fragment). */
  fragOffset: number;
  /**
   * The protocol as netfilter's ipv6_find_hdr() sees it (what ip6tables -p
   * compares): IPv6 only reads the first bytes of each extension header. In
   * IPv4, the IP header's protocol field. null without an IP header.
   */
  nfProto: number | null;
  /** 0: found; 1: a header could not be read (-EBADMSG); 2: later fragment of an extension header (-ENOENT). */
  nfStatus: number;
  /** Bytes present from the header nfProto names (IPv4: from the end of the IP header). */
  nfAvail: number;
  /**
   * IPv6: the walk stopped at a fragment header with a non-zero offset
   * (netfilter's fragoff), even one whose last bytes are cut off: transport
   * matches fail there without dropping the packet.
   */
  nfLater: boolean;
  /**
   * IPv6: what ip6tables' -m ah sees: 'found' (the SPI is ah.spi), 'none' (no
   * match, no drop), 'drop' (the match drops the packet). 'none' in IPv4.
   */
  nfAh: NfAh;
  /** iptables-nft's meta l4proto: IPv6 stops at the first AH (51); null when the walk fails. IPv4: the header's field. */
  nftProto: number | null;
  /**
   * What iptables-nft's port loads read on Linux 6.18 (2 bytes at offsets 0
   * and 2 from nftables' transport offset, fragment offset or not): IPv4 at
   * the end of the IP header; IPv6 where the l4proto walk stopped, or the
   * IPv6 header's first 4 bytes in a later fragment. null where the packet
   * ends first or there is no transport offset.
   */
  nftSport: number | null;
  nftDport: number | null;
}

export type NfAh = 'found' | 'none' | 'drop';
const NF_AH: NfAh[] = ['found', 'none', 'drop'];

const FRAGMENTS: Fragment[] = ['none', 'first', 'later'];
const NATT: (NattKind | null)[] = [null, 'ike', 'esp', 'keepalive'];

/** Malformed reason names by code, identical in both decoders. */
export const MALFORMED_NAMES: readonly (string | null)[] = [
  null, 'link-truncated', 'ip-truncated', 'ip-version', 'ip-header-length', 'ip-total-length',
  'ext-truncated', 'ext-chain', 'ah-truncated', 'ah-length', 'udp-truncated', 'udp-length',
  'tcp-truncated', 'tcp-header-length', 'icmp-truncated', 'esp-truncated', 'natt-truncated',
  'ike-truncated', 'ike-length',
];

/** Decoded::nft_ports (native/core/decode.h NftPorts): 2-3 bytes at the transport offset, or 4 and more. */
const NFT_PORTS_SOURCE = 1, NFT_PORTS_BOTH = 2;
const HAS_PORTS = 1, HAS_SPI = 2, HAS_ESP_SEQ = 4, HAS_AH = 8, HAS_ICMP = 16, HAS_IKE = 32;

function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** Turn a native record (RECORD_SIZE bytes at `offset`) into a DecodedPacket. */
export function recordToPacket(rec: Uint8Array, offset = 0): DecodedPacket {
  const v = new DataView(rec.buffer, rec.byteOffset + offset, RECORD_SIZE);
  const family = v.getUint8(0);
  const malformedCode = v.getUint8(4);
  const malformed = malformedCode === 0 ? null : MALFORMED_NAMES[malformedCode] ?? `unknown-${malformedCode}`;
  const present = v.getUint8(6);
  const l3Offset = v.getUint16(66, true);
  const l4Offset = v.getUint16(92, true);
  if (family !== 4 && family !== 6) {
    return emptyPacket(malformed, l3Offset);
  }
  const alen = family === 4 ? 4 : 16;
  const at = rec.byteOffset + offset;
  return {
    family,
    // Views into the record buffer (fresh for every decode call), not copies: no allocation per address.
    srcBytes: new Uint8Array(rec.buffer, at + 8, alen),
    dstBytes: new Uint8Array(rec.buffer, at + 24, alen),
    proto: v.getUint8(1),
    ipProto: v.getUint8(7),
    fragment: FRAGMENTS[v.getUint8(2)] ?? null,
    ttl: v.getUint8(3),
    totalLength: v.getUint32(40, true),
    sport: present & HAS_PORTS ? v.getUint16(44, true) : null,
    dport: present & HAS_PORTS ? v.getUint16(46, true) : null,
    spi: present & HAS_SPI ? v.getUint32(48, true) : null,
    espSeq: present & HAS_ESP_SEQ ? v.getUint32(52, true) : null,
    ah: present & HAS_AH ? { spi: v.getUint32(56, true) } : null,
    icmp: present & HAS_ICMP ? { type: v.getUint8(60), code: v.getUint8(61) } : null,
    ike: present & HAS_IKE
      ? {
          version: v.getUint8(62),
          exchange: v.getUint8(63),
          flags: v.getUint8(64),
          nextPayload: v.getUint8(65),
          ispi: hex(new Uint8Array(rec.buffer, at + 76, 8)),
          rspi: hex(new Uint8Array(rec.buffer, at + 84, 8)),
          msgid: v.getUint32(68, true),
          length: v.getUint32(72, true),
          firstNotify: v.getUint16(102, true),
        }
      : null,
    natt: NATT[v.getUint8(5)] ?? null,
    malformed,
    l3Offset,
    l4Offset,
    fragOffset: v.getUint16(94, true),
    nfProto: v.getUint8(97) === 0 ? v.getUint8(96) : null,
    nfStatus: v.getUint8(97),
    nfAvail: v.getUint16(98, true),
    // Byte 100 packs nf_later (bit 0), nf_ah (bits 1-2), nft_status (bits 3-4) and nft_ports (bits 5-6); 101 is nft_proto.
    nfLater: (v.getUint8(100) & 1) === 1,
    nfAh: NF_AH[(v.getUint8(100) >> 1) & 3] ?? 'drop',
    nftProto: ((v.getUint8(100) >> 3) & 3) === 0 ? v.getUint8(101) : null,
    nftSport: ((v.getUint8(100) >> 5) & 3) >= NFT_PORTS_SOURCE ? v.getUint16(104, true) : null,
    nftDport: ((v.getUint8(100) >> 5) & 3) === NFT_PORTS_BOTH ? v.getUint16(106, true) : null,
  };
}

/** A packet with no IP information: a non-IP frame, or an unreadable IP header. */
export function emptyPacket(malformed: string | null, l3Offset = 0): DecodedPacket {
  return {
    family: null, srcBytes: null, dstBytes: null, proto: null, ipProto: null, fragment: null,
    ttl: null, totalLength: null, sport: null, dport: null, spi: null, espSeq: null, ah: null,
    icmp: null, ike: null, natt: null, malformed, l3Offset, l4Offset: 0, fragOffset: 0, nfProto: null, nfStatus: 0, nfAvail: 0, nfLater: false, nfAh: 'none', nftProto: null,
    nftSport: null, nftDport: null,
  };
}

/** Decode one frame with the native decoder. */
export function decodeFrame(linkType: number, frame: Uint8Array): DecodedPacket {
  return recordToPacket(native().decodeFrame(linkType, frame));
}

/** Decode many frames of one link type in a single native call. */
export function decodeFrames(linkType: number, frames: readonly Uint8Array[]): DecodedPacket[] {
  const { data, offsets } = packFrames(frames);
  const out = new Uint8Array(frames.length * RECORD_SIZE);
  native().decodeBatch(linkType, data, offsets, out);
  const result: DecodedPacket[] = new Array(frames.length);
  for (let i = 0; i < frames.length; i++) result[i] = recordToPacket(out, i * RECORD_SIZE);
  return result;
}

/** Pack frames into one buffer with n+1 offsets, the layout of every batch call. */
export function packFrames(frames: readonly Uint8Array[]): { data: Uint8Array; offsets: Uint32Array } {
  let total = 0;
  for (const f of frames) total += f.length;
  const data = new Uint8Array(total);
  const offsets = new Uint32Array(frames.length + 1);
  let at = 0;
  frames.forEach((f, i) => {
    data.set(f, at);
    offsets[i] = at;
    at += f.length;
  });
  offsets[frames.length] = at;
  return { data, offsets };
}

/** The `inspect --json` object for a packet (key order is part of the CLI contract). */
export function packetJson(index: number, p: DecodedPacket): Record<string, unknown> {
  return {
    index,
    family: p.family,
    src: p.srcBytes ? formatAddress(p.srcBytes) : null,
    dst: p.dstBytes ? formatAddress(p.dstBytes) : null,
    proto: p.proto,
    fragment: p.fragment,
    sport: p.sport,
    dport: p.dport,
    spi: p.spi,
    ah: p.ah,
    icmp: p.icmp,
    ike: p.ike
      ? { version: p.ike.version, exchange: p.ike.exchange, flags: p.ike.flags, ispi: p.ike.ispi, rspi: p.ike.rspi, msgid: p.ike.msgid }
      : null,
    natt: p.natt,
    malformed: p.malformed,
  };
}
