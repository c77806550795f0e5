/**
 * Reference decoder: the same contract as native/core/decode.cc, written
 * independently and plainly in TypeScript. It is the oracle of the property
 * tests (test/decode-property.test.ts) and of the reference evaluator, not a
 * fast path: it favours obviousness over speed.
 *
 * Conventions: `cap` is how many bytes are present from a header on; `declared`
 * is how many the enclosing headers claim. A header needing more than `cap`
 * is malformed; cap < declared alone (snaplen, NFQUEUE copy range) is not.
 */
import { DecodedPacket, emptyPacket } from './packet';
import { LinkType } from '../wire';

const LINK = {
  NULL: LinkType.Null, ETHERNET: LinkType.Ethernet, PPP: LinkType.Ppp, PPP_HDLC: LinkType.PppHdlc, RAW: LinkType.Raw,
  LOOP: LinkType.Loop, SLL: LinkType.LinuxSll, IPV4: LinkType.Ipv4, IPV6: LinkType.Ipv6, SLL2: LinkType.LinuxSll2,
} as const;

export const SUPPORTED_LINK_TYPES: readonly number[] = Object.values(LINK);

const MAX_EXT_HEADERS = 32;
const MAX_VLAN_TAGS = 8;

class Walk {
  readonly pkt: DecodedPacket = emptyPacket(null);
  constructor(readonly bytes: Uint8Array) {}

  u8(at: number): number { return this.bytes[at]; }
  u16(at: number): number { return (this.bytes[at] << 8) | this.bytes[at + 1]; }
  u32(at: number): number { return ((this.bytes[at] << 24) >>> 0) + (this.bytes[at + 1] << 16) + (this.bytes[at + 2] << 8) + this.bytes[at + 3]; }

  /** Record the first problem only. */
  bad(reason: string): void {
    if (this.pkt.malformed === null) this.pkt.malformed = reason;
  }
}

/** Decode one link-layer frame (pcap link type) with the reference decoder. */
// Over 60 lines: the reference decoder is one straight walk down the headers, read side by side with native/core/decode.cc.
export function referenceDecode(linkType: number, frame: Uint8Array): DecodedPacket {
  const w = new Walk(frame);
  const n = frame.length;
  let l3 = 0;
  let version = 0;
  switch (linkType) {
    case LINK.RAW: break;
    case LINK.IPV4: version = 4; break;
    case LINK.IPV6: version = 6; break;
    case LINK.ETHERNET: {
      if (n < 14) { w.bad('link-truncated'); return w.pkt; }
      let type = w.u16(12);
      l3 = 14;
      let tags = 0;
      while (type === 0x8100 || type === 0x88a8 || type === 0x9100) {
        if (tags === MAX_VLAN_TAGS || n < l3 + 4) { w.bad('link-truncated'); return w.pkt; }
        type = w.u16(l3 + 2);
        l3 += 4;
        tags++;
      }
      if (type === 0x0800) version = 4;
      else if (type === 0x86dd) version = 6;
      else return w.pkt;
      break;
    }
    case LINK.NULL:
    case LINK.LOOP: {
      if (n < 4) { w.bad('link-truncated'); return w.pkt; }
      const fam = (af: number): number => (af === 2 ? 4 : [10, 24, 28, 30].includes(af) ? 6 : 0);
      version = fam(w.u32(0));
      if (version === 0 && linkType === LINK.NULL) {
        version = fam(frame[0] + frame[1] * 256 + frame[2] * 65536 + frame[3] * 16777216);
      }
      if (version === 0) return w.pkt;
      l3 = 4;
      break;
    }
    case LINK.PPP:
    case LINK.PPP_HDLC: {
      if (n >= 2 && frame[0] === 0xff && frame[1] === 0x03) l3 = 2;
      if (n < l3 + 1) { w.bad('link-truncated'); return w.pkt; }
      let proto: number;
      if (frame[l3] % 2 === 1) {
        proto = frame[l3];
        l3 += 1;
      } else {
        if (n < l3 + 2) { w.bad('link-truncated'); return w.pkt; }
        proto = w.u16(l3);
        l3 += 2;
      }
      if (proto === 0x21) version = 4;
      else if (proto === 0x57) version = 6;
      else return w.pkt;
      break;
    }
    case LINK.SLL:
    case LINK.SLL2: {
      const hdr = linkType === LINK.SLL ? 16 : 20;
      if (n < hdr) { w.bad('link-truncated'); return w.pkt; }
      const type = w.u16(linkType === LINK.SLL ? 14 : 0);
      if (type === 0x0800) version = 4;
      else if (type === 0x86dd) version = 6;
      else return w.pkt;
      l3 = hdr;
      break;
    }
    default:
      throw new RangeError(`unsupported link type ${linkType}`);
  }
  w.pkt.l3Offset = l3;
  if (l3 >= n) { w.bad('ip-truncated'); return w.pkt; }
  if (version === 0) version = frame[l3] >> 4;
  if (version === 4) ipv4(w, l3);
  else if (version === 6) ipv6(w, l3);
  else w.bad('ip-version');
  if (w.pkt.family === null) {
    // Nothing IP-level is reported without a readable IP header.
    const malformed = w.pkt.malformed;
    return emptyPacket(malformed, l3);
  }
  return w.pkt;
}

function ipv4(w: Walk, l3: number): void {
  const n = w.bytes.length - l3;
  if (n < 20) return w.bad('ip-truncated');
  if (w.u8(l3) >> 4 !== 4) return w.bad('ip-version');
  const p = w.pkt;
  p.family = 4;
  p.nfAh = 'none';
  p.ttl = w.u8(l3 + 8);
  p.ipProto = p.proto = p.nfProto = p.nftProto = w.u8(l3 + 9);
  p.srcBytes = w.bytes.slice(l3 + 12, l3 + 16);
  p.dstBytes = w.bytes.slice(l3 + 16, l3 + 20);
  p.fragment = 'none';
  const total = w.u16(l3 + 2);
  p.totalLength = total;
  const ihl = (w.u8(l3) & 15) * 4;
  if (ihl < 20 || ihl > n) return w.bad('ip-header-length');
  if (total < ihl) return w.bad('ip-total-length');
  nftPorts(w, l3 + ihl, l3 + Math.min(n, total));
  p.l4Offset = l3 + ihl;
  const flagsAndOffset = w.u16(l3 + 6);
  p.fragOffset = flagsAndOffset & 0x1fff;
  if ((flagsAndOffset & 0x1fff) !== 0) { p.fragment = 'later'; return; }
  if (flagsAndOffset & 0x2000) p.fragment = 'first';
  const end = l3 + Math.min(n, total);
  const declaredEnd = l3 + total;
  p.nfAvail = Math.min(65535, end - (l3 + ihl));
  let at = l3 + ihl;
  let hops = 0;
  while (p.proto === 51) {
    if (hops++ === MAX_EXT_HEADERS) return w.bad('ext-chain');
    const len = authHeader(w, at, end);
    if (len === 0) return;
    p.proto = w.u8(at);
    at += len;
  }
  p.l4Offset = at;
  upper(w, at, end, declaredEnd);
}

function ipv6(w: Walk, l3: number): void {
  const n = w.bytes.length - l3;
  if (n < 40) return w.bad('ip-truncated');
  if (w.u8(l3) >> 4 !== 6) return w.bad('ip-version');
  const p = w.pkt;
  p.family = 6;
  p.ttl = w.u8(l3 + 7);
  p.ipProto = w.u8(l3 + 6);
  p.srcBytes = w.bytes.slice(l3 + 8, l3 + 24);
  p.dstBytes = w.bytes.slice(l3 + 24, l3 + 40);
  p.fragment = 'none';
  const payloadLength = w.u16(l3 + 4);
  const total = payloadLength === 0 ? n : 40 + payloadLength;
  p.totalLength = total;
  const end = l3 + Math.min(n, total);
  const declaredEnd = l3 + total;
  findHdr(w, l3, end);
  findAh(w, l3, end);
  let next = p.ipProto;
  let at = l3 + 40;
  for (let hops = 0; ; hops++) {
    p.proto = next;
    p.l4Offset = at;
    const isExt = next === 0 || next === 43 || next === 60 || next === 44 || next === 51;
    if (!isExt) break;
    if (hops === MAX_EXT_HEADERS) return w.bad('ext-chain');
    const avail = Math.max(0, end - at);
    if (next === 51) {
      const len = authHeader(w, at, end);
      if (len === 0) return;
      next = w.u8(at);
      at += len;
      continue;
    }
    if (avail < 8) return w.bad('ext-truncated');
    if (next === 44) {
      const fo = w.u16(at + 2);
      p.fragOffset = fo >> 3;
      if (fo >> 3 !== 0) {
        p.fragment = 'later';
        p.proto = w.u8(at);
        p.l4Offset = at + 8;
        return;
      }
      if (fo & 1) p.fragment = 'first';
      next = w.u8(at);
      at += 8;
    } else {
      const len = (w.u8(at + 1) + 1) * 8;
      if (len > avail) return w.bad('ext-truncated');
      next = w.u8(at);
      at += len;
    }
  }
  upper(w, at, end, declaredEnd);
}

const IPV6_EXT = new Set([0, 43, 44, 51, 60, 59]);

/**
 * ipv6_find_hdr(skb, &off, -1, &fragoff, NULL), net/ipv6/exthdrs_core.c:
 * the walk ip6tables' -p relies on. It needs 2 bytes of an extension header
 * (4 of routing and fragment headers) and never reads the upper-layer header.
 */
function findHdr(w: Walk, l3: number, end: number): void {
  const p = w.pkt;
  const { ahAt, transport } = walkHdr(w, l3, end);
  // iptables-nft's meta l4proto: the same walk with IP6_FH_F_AUTH stops at the
  // first AH. Its port loads read from there, from the upper layer, or (a
  // later fragment, whose offset ipv6_find_hdr() leaves at 0) from the IPv6 header.
  p.nftProto = ahAt !== null ? 51 : p.nfProto;
  if (ahAt !== null) nftPorts(w, ahAt, end);
  else if (p.nfStatus === 0) nftPorts(w, p.nfLater ? l3 : transport, end);
}

/** Where iptables-nft's port loads read: 2 bytes at `at` (source port) and at `at + 2`, when the packet has them. */
function nftPorts(w: Walk, at: number, end: number): void {
  if (at + 2 <= end) w.pkt.nftSport = w.u16(at);
  if (at + 4 <= end) w.pkt.nftDport = w.u16(at + 2);
}

/** The walk; returns the first AH's offset (or null) and where it stopped. */
function walkHdr(w: Walk, l3: number, end: number): { ahAt: number | null; transport: number } {
  const p = w.pkt;
  let next = w.u8(l3 + 6);
  let at = l3 + 40;
  let ahAt: number | null = null;
  while (IPV6_EXT.has(next) && next !== 59) {
    const need = next === 43 || next === 44 ? 4 : 2;
    if (at + 2 <= end && next === 51) ahAt ??= at;
    if (at + need > end) { p.nfStatus = 1; p.nfProto = null; return { ahAt, transport: 0 }; }
    if (next === 44) {
      const offset = w.u16(at + 2) >> 3;
      const inner = w.u8(at);
      if (offset !== 0) {
        if (IPV6_EXT.has(inner) && inner !== 59) { p.nfStatus = 2; p.nfProto = null; return { ahAt, transport: 0 }; }
        next = inner;
        at += 8;
        p.nfLater = true;
        break;
      }
      next = inner;
      at += 8;
    } else {
      const len = next === 51 ? (w.u8(at + 1) + 2) * 4 : (w.u8(at + 1) + 1) * 8;
      next = w.u8(at);
      at += len;
    }
  }
  p.nfProto = next;
  p.nfAvail = Math.min(65535, Math.max(0, end - at));
  return { ahAt, transport: at };
}

/**
 * ipv6_find_hdr(skb, &ptr, NEXTHDR_AUTH, NULL, NULL) and ip6t_ah's checks:
 * the first AH, reached over headers of which 2 bytes are read (4 of routing
 * and fragment headers); the upper layer, 59 or a later fragment first means
 * no AH ('none'); a header that cannot be read, or an AH without its fixed
 * 12 bytes or its declared length, makes -m ah drop the packet.
 */
function findAh(w: Walk, l3: number, end: number): void {
  const p = w.pkt;
  let next = w.u8(l3 + 6);
  let at = l3 + 40;
  for (;;) {
    const avail = Math.max(0, end - at);
    if (next === 51) {
      if (avail < 12 || (w.u8(at + 1) + 2) * 4 > avail) { p.nfAh = 'drop'; return; }
      p.nfAh = 'found';
      if (p.ah === null) p.ah = { spi: w.u32(at + 4) };
      return;
    }
    if (![0, 43, 44, 60].includes(next)) { p.nfAh = 'none'; return; }
    if (avail < (next === 43 || next === 44 ? 4 : 2)) { p.nfAh = 'drop'; return; }
    if (next === 44 && w.u16(at + 2) >> 3 !== 0) { p.nfAh = 'none'; return; }
    const len = next === 44 ? 8 : (w.u8(at + 1) + 1) * 8;
    next = w.u8(at);
    at += len;
  }
}

/**
 * AH (RFC 4302): returns its length, or 0 after flagging a problem. A length
 * under the fixed 12 bytes (field 0: 8 bytes) is flagged and walked over, as
 * the kernel and Wireshark do.
 */
function authHeader(w: Walk, at: number, end: number): number {
  const avail = Math.max(0, end - at);
  if (avail >= 8 && w.pkt.ah === null) w.pkt.ah = { spi: w.u32(at + 4) };
  if (avail < 12) { w.bad('ah-truncated'); return 0; }
  const len = (w.u8(at + 1) + 2) * 4;
  if (len < 12) w.bad('ah-length');
  if (len > avail) { w.bad('ah-length'); return 0; }
  return len;
}

function upper(w: Walk, at: number, end: number, declaredEnd: number): void {
  const cap = Math.max(0, end - at);
  const declared = Math.max(0, declaredEnd - at);
  const p = w.pkt;
  if (p.proto === 6 || p.proto === 17) {
    if (cap >= 4) { p.sport = w.u16(at); p.dport = w.u16(at + 2); }
    if (p.proto === 6) {
      if (cap < 20) return w.bad('tcp-truncated');
      const hl = (w.u8(at + 12) >> 4) * 4;
      if (hl < 20 || hl > declared) w.bad('tcp-header-length');
      return;
    }
    if (cap < 8) return w.bad('udp-truncated');
    const ulen = w.u16(at + 4);
    let payloadDeclared = ulen - 8;
    if (ulen < 8 || ulen > declared) {
      w.bad('udp-length');
      payloadDeclared = declared - 8;
    }
    const payloadCap = Math.min(cap - 8, payloadDeclared);
    if (p.sport === 500 || p.dport === 500) ike(w, at + 8, payloadCap, payloadDeclared);
    else if (p.sport === 4500 || p.dport === 4500) natt(w, at + 8, payloadCap, payloadDeclared);
  } else if (p.proto === 1 || p.proto === 58) {
    if (cap >= 2) p.icmp = { type: w.u8(at), code: w.u8(at + 1) };
    if (cap < 8) w.bad('icmp-truncated');
  } else if (p.proto === 50) {
    esp(w, at, cap);
  }
}

function esp(w: Walk, at: number, cap: number): void {
  if (cap >= 4) w.pkt.spi = w.u32(at);
  if (cap >= 8) w.pkt.espSeq = w.u32(at + 4);
  else w.bad('esp-truncated');
}

function natt(w: Walk, at: number, cap: number, declared: number): void {
  if (declared === 0) return;
  if (declared === 1 && cap === 1 && w.u8(at) === 0xff) { w.pkt.natt = 'keepalive'; return; }
  if (cap < 4) {
    if (cap < declared) return w.bad('natt-truncated');
    w.pkt.natt = 'esp';
    return w.bad('esp-truncated');
  }
  if (w.u32(at) === 0) {
    w.pkt.natt = 'ike';
    ike(w, at + 4, cap - 4, declared - 4);
  } else {
    w.pkt.natt = 'esp';
    esp(w, at, cap);
  }
}

const IKE_PAYLOAD_NOTIFY = 41;

function ike(w: Walk, at: number, cap: number, declared: number): void {
  if (cap < 28) return w.bad('ike-truncated');
  const hex = (from: number): string => Buffer.from(w.bytes.subarray(from, from + 8)).toString('hex');
  const length = w.u32(at + 24);
  w.pkt.ike = {
    version: w.u8(at + 17) >> 4,
    exchange: w.u8(at + 18),
    flags: w.u8(at + 19),
    nextPayload: w.u8(at + 16),
    ispi: hex(at),
    rspi: hex(at + 8),
    msgid: w.u32(at + 20),
    length,
    firstNotify: 0,
  };
  if (length < 28 || length > declared) w.bad('ike-length');
  // Only the first payload: RFC 7296 section 2.6 puts a retried request's COOKIE first.
  const payloadLength = cap >= 28 + 8 ? w.u16(at + 28 + 2) : 0;
  if (w.pkt.ike.version === 2 && w.pkt.ike.nextPayload === IKE_PAYLOAD_NOTIFY && payloadLength >= 8 && payloadLength <= length - 28) {
    w.pkt.ike.firstNotify = w.u16(at + 28 + 6);
  }
}
