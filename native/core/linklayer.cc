// Link-layer framing for captures: find the IP header in a frame of a given
// pcap link type, then hand over to the IP decoder. Frames that carry no IP
// (ARP, LLC, PPP control protocols) decode to family 0 with no malformed mark.
#include <cstring>

#include "decode.h"

namespace nfsieve {
namespace {

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;

inline bool is_vlan(uint16_t type) { return type == 0x8100 || type == 0x88a8 || type == 0x9100; }

// Version announced by an ethertype: 4, 6, or 0 for "not IP".
inline int ether_version(uint16_t type) { return type == kEtherIpv4 ? 4 : type == kEtherIpv6 ? 6 : 0; }

// BSD address families for IPv6 differ per OS (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS, 10 Linux).
inline int af_version(uint32_t af) {
  if (af == 2) return 4;
  if (af == 24 || af == 28 || af == 30 || af == 10) return 6;
  return 0;
}

}  // namespace

bool link_type_supported(uint32_t link_type) {
  switch (link_type) {
    case kLinkNull:
    case kLinkEthernet:
    case kLinkPpp:
    case kLinkPppHdlc:
    case kLinkRaw:
    case kLinkLoop:
    case kLinkLinuxSll:
    case kLinkIpv4:
    case kLinkIpv6:
    case kLinkLinuxSll2: return true;
    default: return false;
  }
}

// Over 60 lines: one short case per link type (a switch).
void decode_frame(uint32_t link_type, const uint8_t* p, size_t len, Decoded* d) {
  std::memset(d, 0, sizeof(*d));
  size_t l3 = 0;
  int version = 0;
  switch (link_type) {
    case kLinkRaw: break;
    case kLinkIpv4: version = 4; break;
    case kLinkIpv6: version = 6; break;
    case kLinkEthernet: {
      if (len < 14) return void(d->malformed = kLinkTruncated);
      uint16_t type = be16(p + 12);
      l3 = 14;
      for (int tags = 0; is_vlan(type); tags++) {
        if (tags >= kMaxVlanTags || len < l3 + 4) return void(d->malformed = kLinkTruncated);
        type = be16(p + l3 + 2);
        l3 += 4;
      }
      version = ether_version(type);
      if (version == 0) return;
      break;
    }
    case kLinkNull:
    case kLinkLoop: {
      if (len < 4) return void(d->malformed = kLinkTruncated);
      uint32_t be =
          static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
      uint32_t le =
          static_cast<uint32_t>(p[3]) << 24 | static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[1]) << 8 | p[0];
      version = af_version(be);
      if (version == 0 && link_type == kLinkNull) version = af_version(le);
      if (version == 0) return;
      l3 = 4;
      break;
    }
    case kLinkPpp:
    case kLinkPppHdlc: {
      if (len >= 2 && p[0] == 0xff && p[1] == 0x03) l3 = 2;  // address + control
      if (len < l3 + 1) return void(d->malformed = kLinkTruncated);
      uint16_t proto;
      if (p[l3] & 1) {  // protocol-field compression: one byte
        proto = p[l3];
        l3 += 1;
      } else {
        if (len < l3 + 2) return void(d->malformed = kLinkTruncated);
        proto = be16(p + l3);
        l3 += 2;
      }
      version = proto == 0x21 ? 4 : proto == 0x57 ? 6 : 0;
      if (version == 0) return;
      break;
    }
    case kLinkLinuxSll: {
      if (len < 16) return void(d->malformed = kLinkTruncated);
      version = ether_version(be16(p + 14));
      if (version == 0) return;
      l3 = 16;
      break;
    }
    case kLinkLinuxSll2: {
      if (len < 20) return void(d->malformed = kLinkTruncated);
      version = ether_version(be16(p));
      if (version == 0) return;
      l3 = 20;
      break;
    }
    default: return;  // unsupported link types are refused by the capture reader
  }
  decode_ip_at(p, l3, len, version, d);
}

}  // namespace nfsieve
