// IP, extension-header, transport and IKE decoding. See decode.h for the
// contract; docs/decoding.md explains each choice against the kernel and
// Wireshark.
//
// Every function takes `cap`, the bytes actually present from its header on,
// and `declared`, the bytes the enclosing headers say are there. A copy range
// or a capture snaplen makes cap < declared, which is not an error by itself;
// a header that needs more than `cap` is.
#include "decode.h"

#include <cstring>

namespace nfsieve {
namespace {

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}
inline size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

inline void flag(Decoded* d, Malformed m) {
  if (d->malformed == kOk) d->malformed = m;
}

constexpr uint16_t kPortIke = 500;
constexpr uint16_t kPortNatt = 4500;
constexpr size_t kIkeHeader = 28;

void decode_ike(const uint8_t* p, size_t cap, size_t declared, Decoded* d) {
  if (cap < kIkeHeader) {
    flag(d, kIkeTruncated);
    return;
  }
  d->present |= kHasIke;
  std::memcpy(d->ike_ispi, p, 8);
  std::memcpy(d->ike_rspi, p + 8, 8);
  d->ike_next_payload = p[16];
  d->ike_version = p[17] >> 4;
  d->ike_exchange = p[18];
  d->ike_flags = p[19];
  d->ike_msgid = be32(p + 20);
  d->ike_length = be32(p + 24);
  if (d->ike_length < kIkeHeader || d->ike_length > declared) flag(d, kIkeLength);
  // RFC 7296 section 2.6: a retried IKE_SA_INIT carries COOKIE as its first
  // payload, so the first payload is all there is to read (no chain walk).
  if (d->ike_version == 2 && d->ike_next_payload == kIkePayloadNotify && cap >= kIkeHeader + kIkeNotifyFixed) {
    const uint8_t* n = p + kIkeHeader;
    const uint16_t payload_length = static_cast<uint16_t>(n[2] << 8 | n[3]);
    // The payload must fit the message its header declares (else it is not a notify at all).
    if (payload_length >= kIkeNotifyFixed && d->ike_length >= kIkeHeader && payload_length <= d->ike_length - kIkeHeader)
      d->ike_first_notify = static_cast<uint16_t>(n[6] << 8 | n[7]);
  }
}

void decode_esp(const uint8_t* p, size_t cap, Decoded* d) {
  if (cap >= 4) {
    d->spi = be32(p);
    d->present |= kHasSpi;
  }
  if (cap >= 8) {
    d->esp_seq = be32(p + 4);
    d->present |= kHasEspSeq;
  } else {
    flag(d, kEspTruncated);
  }
}

// RFC 3948 section 2: a one-byte 0xFF payload is a keepalive; four zero bytes
// (the non-ESP marker) precede an IKE header; anything else is ESP whose first
// four bytes are the (never zero) SPI.
void decode_natt(const uint8_t* p, size_t cap, size_t declared, Decoded* d) {
  if (declared == 0) return;
  if (declared == 1 && cap == 1 && p[0] == 0xff) {
    d->natt = kNattKeepalive;
    return;
  }
  if (cap < 4) {
    if (cap < declared) {
      flag(d, kNattTruncated);
    } else {
      d->natt = kNattEsp;
      flag(d, kEspTruncated);
    }
    return;
  }
  if (be32(p) == 0) {
    d->natt = kNattIke;
    decode_ike(p + 4, cap - 4, declared - 4, d);
  } else {
    d->natt = kNattEsp;
    decode_esp(p, cap, d);
  }
}

void decode_udp(const uint8_t* p, size_t cap, size_t declared, Decoded* d) {
  if (cap >= 4) {
    d->sport = be16(p);
    d->dport = be16(p + 2);
    d->present |= kHasPorts;
  }
  if (cap < 8) {
    flag(d, kUdpTruncated);
    return;
  }
  size_t length = be16(p + 4);
  size_t payload_declared;
  if (length < 8 || length > declared) {
    flag(d, kUdpLength);
    payload_declared = declared - 8;
  } else {
    payload_declared = length - 8;
  }
  size_t payload_cap = min_size(cap - 8, payload_declared);
  // Wireshark's rule: the lower port is tried first, so 500 wins over 4500.
  if (d->sport == kPortIke || d->dport == kPortIke) {
    decode_ike(p + 8, payload_cap, payload_declared, d);
  } else if (d->sport == kPortNatt || d->dport == kPortNatt) {
    decode_natt(p + 8, payload_cap, payload_declared, d);
  }
}

void decode_tcp(const uint8_t* p, size_t cap, size_t declared, Decoded* d) {
  if (cap >= 4) {
    d->sport = be16(p);
    d->dport = be16(p + 2);
    d->present |= kHasPorts;
  }
  if (cap < 20) {
    flag(d, kTcpTruncated);
    return;
  }
  size_t header = static_cast<size_t>(p[12] >> 4) * 4;
  if (header < 20 || header > declared) flag(d, kTcpHeaderLength);
}

void decode_icmp(const uint8_t* p, size_t cap, Decoded* d) {
  if (cap >= 2) {
    d->icmp_type = p[0];
    d->icmp_code = p[1];
    d->present |= kHasIcmp;
  }
  if (cap < 8) flag(d, kIcmpTruncated);
}

// Authentication header (RFC 4302), the same in both families: its length
// field counts 32-bit words minus 2. Returns the header length, 0 on error.
// A length field of 0 (8 bytes, less than the fixed 12) is flagged but walked
// over as 8 bytes, as the kernel's ipv6_skip_exthdr() and Wireshark do.
constexpr size_t kAhFixed = 12;

size_t walk_ah(const uint8_t* p, size_t cap, Decoded* d) {
  if (cap >= 8 && !(d->present & kHasAh)) {
    d->ah_spi = be32(p + 4);
    d->present |= kHasAh;
  }
  if (cap < kAhFixed) {
    flag(d, kAhTruncated);
    return 0;
  }
  size_t length = (static_cast<size_t>(p[1]) + 2) * 4;
  if (length < kAhFixed) flag(d, kAhLength);
  if (length > cap) {
    flag(d, kAhLength);
    return 0;
  }
  return length;
}

// The upper-layer header at p[off], the IP packet ending at `end` (captured)
// and `declared_end` (what the IP header says).
void decode_upper(const uint8_t* p, size_t off, size_t end, size_t declared_end, Decoded* d) {
  size_t cap = off < end ? end - off : 0;
  size_t declared = off < declared_end ? declared_end - off : 0;
  switch (d->proto) {
    case 6: decode_tcp(p + off, cap, declared, d); break;
    case 17: decode_udp(p + off, cap, declared, d); break;
    case 1:
    case 58: decode_icmp(p + off, cap, d); break;
    case 50: decode_esp(p + off, cap, d); break;
    default: break;
  }
}

// iptables-nft's port loads: 2 bytes at `thoff` (source port) and at
// thoff + 2 (destination port), from the IP header at p to `end`. The
// payload fast path reads them whatever the fragment offset.
void nft_ports(const uint8_t* p, size_t thoff, size_t end, Decoded* d) {
  const size_t have = thoff < end ? end - thoff : 0;
  if (have < 2) return;
  d->nft_sport = be16(p + thoff);
  if (have >= 4) d->nft_dport = be16(p + thoff + 2);
  d->nft_ports = have >= 4 ? kNftPortsBoth : kNftPortsSource;
}

void decode_ipv4(const uint8_t* frame, size_t l3, size_t len, Decoded* d) {
  const uint8_t* p = frame + l3;
  size_t n = len - l3;
  if (n < 20) return flag(d, kIpTruncated);
  if (p[0] >> 4 != 4) return flag(d, kIpVersion);
  d->family = 4;
  d->nft_proto = p[9];
  d->nf_ah = kNfAhNone;  // -m ah in IPv4 reads at the transport offset (nf_avail)
  d->ttl = p[8];
  d->ip_proto = d->proto = d->nf_proto = p[9];
  std::memcpy(d->src, p + 12, 4);
  std::memcpy(d->dst, p + 16, 4);
  size_t total = be16(p + 2);
  d->total_length = static_cast<uint32_t>(total);
  size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > n) return flag(d, kIpHeaderLength);
  if (total < ihl) return flag(d, kIpTotalLength);
  nft_ports(p, ihl, min_size(n, total), d);
  uint16_t frag = be16(p + 6);
  d->l4_offset = static_cast<uint16_t>(l3 + ihl);
  d->frag_offset = frag & 0x1fff;
  if (frag & 0x1fff) {
    d->fragment = kFragLater;
    return;  // no upper-layer header in a later fragment
  }
  d->fragment = (frag & 0x2000) ? kFragFirst : kFragNone;
  size_t end = min_size(n, total);
  d->nf_avail = static_cast<uint16_t>(end - ihl > 65535 ? 65535 : end - ihl);
  size_t off = ihl;
  for (int walked = 0; d->proto == 51; walked++) {
    if (walked >= kMaxExtHeaders) return flag(d, kExtChain);
    size_t ah = walk_ah(p + off, off < end ? end - off : 0, d);
    if (ah == 0) return;
    d->proto = p[off];
    off += ah;
  }
  d->l4_offset = static_cast<uint16_t>(l3 + off);
  decode_upper(p, off, end, total, d);
}

// ipv6_find_hdr(skb, &off, -1, &fragoff, NULL) as net/ipv6/exthdrs_core.c
// does it: two bytes of an extension header are enough to jump over it (four
// of a routing or fragment header), and the walk stops at the first header
// that is not an extension header, without reading it.
//
// iptables-nft's meta l4proto is the same walk with IP6_FH_F_AUTH: it stops
// at the first AH it can read 2 bytes of and returns 51 (nft_proto); that
// AH's offset goes to *nft_ah_at. Returns the transport offset (0 when the
// walk fails).
size_t nf_walk(const uint8_t* p, size_t end, Decoded* d, size_t* nft_ah_at) {
  uint8_t next = p[6];
  size_t start = 40;
  for (;;) {
    bool ext = next == 0 || next == 43 || next == 44 || next == 51 || next == 60 || next == 59;
    if (!ext || next == 59) break;
    if (start + 2 > end) {
      d->nf_status = kNfBadMsg;
      return 0;
    }
    if (next == 51 && *nft_ah_at == 0) *nft_ah_at = start;
    size_t hdrlen;
    if (next == 43 && start + 4 > end) {
      d->nf_status = kNfBadMsg;
      return 0;
    }
    if (next == 44) {
      if (start + 4 > end) {
        d->nf_status = kNfBadMsg;
        return 0;
      }
      uint16_t off = be16(p + start + 2) & 0xfff8;
      uint8_t inner = p[start];
      if (off) {
        bool inner_ext = inner == 0 || inner == 43 || inner == 44 || inner == 51 || inner == 60;
        if (!inner_ext) {  // 59 included: "no next header" is returned as such
          next = inner;
          start += 8;
          d->nf_later = 1;
          break;
        }
        d->nf_status = kNfNoEnt;
        return 0;
      }
      hdrlen = 8;
    } else if (next == 51) {
      hdrlen = (static_cast<size_t>(p[start + 1]) + 2) << 2;
    } else {
      hdrlen = (static_cast<size_t>(p[start + 1]) + 1) << 3;
    }
    next = p[start];
    start += hdrlen;
  }
  d->nf_proto = next;
  size_t avail = start < end ? end - start : 0;
  d->nf_avail = static_cast<uint16_t>(avail > 65535 ? 65535 : avail);
  return start;
}

// nf_walk, then iptables-nft's view: its l4proto and where its port loads
// read (the IPv6 header itself in a later fragment: Decoded::nft_sport).
void nf_find_hdr(const uint8_t* p, size_t end, Decoded* d) {
  size_t nft_ah_at = 0;
  size_t transport = nf_walk(p, end, d, &nft_ah_at);
  if (nft_ah_at) {
    d->nft_proto = 51;
    d->nft_status = kNfOk;
    nft_ports(p, nft_ah_at, end, d);
  } else {
    d->nft_proto = d->nf_status == kNfOk ? d->nf_proto : 0;
    d->nft_status = d->nf_status;
    if (d->nf_status == kNfOk) nft_ports(p, d->nf_later ? 0 : transport, end, d);
  }
}

// ip6tables' -m ah (ip6t_ah.c): ipv6_find_hdr(skb, &ptr, NEXTHDR_AUTH, ...)
// walks to the first AH with the same 2- and 4-byte reads as nf_find_hdr; no
// AH before the upper layer, "no next header" or a later fragment is -ENOENT
// (no match), a header it cannot read is -EBADMSG (drop). The match then
// drops the packet unless the AH's fixed 12 bytes and its declared length
// are all there (the declared-length check measured on Linux 6.18, see
// docs/semantics.md).
void nf_find_ah(const uint8_t* p, size_t end, Decoded* d) {
  uint8_t next = p[6];
  size_t start = 40;
  for (;;) {
    size_t avail = start < end ? end - start : 0;
    if (next == 51) {
      size_t length = avail >= 2 ? (static_cast<size_t>(p[start + 1]) + 2) * 4 : 0;
      if (avail < kAhFixed || length > avail) {
        d->nf_ah = kNfAhDrop;
        return;
      }
      d->nf_ah = kNfAhFound;
      if (!(d->present & kHasAh)) {
        d->ah_spi = be32(p + start + 4);
        d->present |= kHasAh;
      }
      return;
    }
    bool ext = next == 0 || next == 43 || next == 44 || next == 60;
    if (!ext) {
      d->nf_ah = kNfAhNone;
      return;
    }  // upper layer or 59
    if (avail < 2 || ((next == 43 || next == 44) && avail < 4)) {
      d->nf_ah = kNfAhDrop;
      return;
    }
    size_t hdrlen = 8;
    if (next == 44) {
      if (be16(p + start + 2) & 0xfff8) {
        d->nf_ah = kNfAhNone;
        return;
      }
    } else {
      hdrlen = (static_cast<size_t>(p[start + 1]) + 1) << 3;
    }
    next = p[start];
    start += hdrlen;
  }
}

void decode_ipv6(const uint8_t* frame, size_t l3, size_t len, Decoded* d) {
  const uint8_t* p = frame + l3;
  size_t n = len - l3;
  if (n < 40) return flag(d, kIpTruncated);
  if (p[0] >> 4 != 6) return flag(d, kIpVersion);
  d->family = 6;
  d->ttl = p[7];
  uint8_t next = d->ip_proto = p[6];
  std::memcpy(d->src, p + 8, 16);
  std::memcpy(d->dst, p + 24, 16);
  size_t payload = be16(p + 4);
  // Payload length 0 is a jumbogram (RFC 2675) or a lie: trust the capture.
  size_t total = payload ? 40 + payload : n;
  d->total_length = static_cast<uint32_t>(total);
  size_t end = min_size(n, total);
  nf_find_hdr(p, end, d);
  nf_find_ah(p, end, d);
  size_t off = 40;
  for (int walked = 0;; walked++) {
    d->proto = next;
    d->l4_offset = static_cast<uint16_t>(l3 + off);
    size_t cap = off < end ? end - off : 0;
    if (next == 0 || next == 43 || next == 60 || next == 44 || next == 51) {
      if (walked >= kMaxExtHeaders) return flag(d, kExtChain);
    }
    if (next == 0 || next == 43 || next == 60) {  // hop-by-hop, routing, destination
      if (cap < 8) return flag(d, kExtTruncated);
      size_t length = (static_cast<size_t>(p[off + 1]) + 1) * 8;
      if (length > cap) return flag(d, kExtTruncated);
      next = p[off];
      off += length;
    } else if (next == 44) {  // fragment
      if (cap < 8) return flag(d, kExtTruncated);
      uint16_t frag = be16(p + off + 2);
      d->frag_offset = frag >> 3;
      if (frag & 0xfff8) {
        d->fragment = kFragLater;
        d->proto = p[off];
        d->l4_offset = static_cast<uint16_t>(l3 + off + 8);
        return;
      }
      if (frag & 1) d->fragment = kFragFirst;
      next = p[off];
      off += 8;
    } else if (next == 51) {  // AH: report its SPI and keep walking
      size_t ah = walk_ah(p + off, cap, d);
      if (ah == 0) return;
      next = p[off];
      off += ah;
    } else {
      break;  // upper layer, or 59 "no next header"
    }
  }
  decode_upper(p, off, end, total, d);
}

}  // namespace

const char* malformed_name(uint8_t code) {
  static const char* const names[kMalformedCount] = {
      nullptr,           "link-truncated", "ip-truncated",  "ip-version",        "ip-header-length",
      "ip-total-length", "ext-truncated",  "ext-chain",     "ah-truncated",      "ah-length",
      "udp-truncated",   "udp-length",     "tcp-truncated", "tcp-header-length", "icmp-truncated",
      "esp-truncated",   "natt-truncated", "ike-truncated", "ike-length",
  };
  return code < kMalformedCount ? names[code] : "unknown";
}

void decode_ip_at(const uint8_t* frame, size_t l3, size_t len, int version, Decoded* d) {
  d->l3_offset = static_cast<uint16_t>(l3);
  if (l3 >= len) return flag(d, kIpTruncated);
  if (version == 0) version = frame[l3] >> 4;
  if (version == 4) return decode_ipv4(frame, l3, len, d);
  if (version == 6) return decode_ipv6(frame, l3, len, d);
  flag(d, kIpVersion);
}

void decode_ip(const uint8_t* data, size_t len, Decoded* out) {
  std::memset(out, 0, sizeof(*out));
  decode_ip_at(data, 0, len, 0, out);
}

uint8_t ike_initial_key(const Decoded& d) {
  if (!(d.present & kHasIke)) return kIkeInitialAbsent;
  bool rspi_zero = true;
  for (int i = 0; i < 8; i++) rspi_zero = rspi_zero && d.ike_rspi[i] == 0;
  if (!rspi_zero) return kIkeNotInitial;
  if (d.ike_version == 2 && d.ike_exchange == kIkeExchangeSaInit && (d.ike_flags & kIkeFlagInitiator) &&
      !(d.ike_flags & kIkeFlagResponse))
    return kIkeInitialV2;
  if (d.ike_version == 1 && (d.ike_exchange == kIkeExchangeMainMode || d.ike_exchange == kIkeExchangeAggressive))
    return kIkeInitialV1;
  return kIkeNotInitial;
}

uint8_t ike_cookie_key(const Decoded& d) {
  if (!(d.present & kHasIke)) return kIkeCookieAbsent;
  return ike_initial_key(d) == kIkeInitialV2 && d.ike_first_notify == kIkeNotifyCookie ? kIkeHasCookie : kIkeNoCookie;
}

}  // namespace nfsieve
