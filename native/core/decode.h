// Packet decoder: raw bytes in, a small fixed struct out.
//
// One pass over the headers, every read bounds-checked against the bytes we
// were given; nothing allocates, nothing throws. A header that is truncated or
// inconsistent sets `malformed` (the first problem found) and the fields that
// could be read before it stay filled in, so the classifier can still match on
// them. The TypeScript reference decoder (src/decode/reference.ts) implements
// the same contract independently and is the test oracle for this file.
//
// The layout of `Decoded` is the record layout the addon hands to JavaScript
// (src/native.ts reads it), so every field has a fixed offset; the
// static_asserts below pin them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire.h"

namespace nfsieve {

// pcap LINKTYPE_* values understood by decode_frame().
enum LinkType : uint32_t {
  kLinkNull = wire::kLinkTypeNull,            // BSD loopback: 4-byte address family, host order
  kLinkEthernet = wire::kLinkTypeEthernet,    // Ethernet II, with any number of 802.1Q/802.1ad tags
  kLinkPpp = wire::kLinkTypePpp,              // PPP, optional 0xff03 address/control, 1 or 2 byte protocol
  kLinkPppHdlc = wire::kLinkTypePppHdlc,      // PPP in HDLC-like framing: same layout for our purposes
  kLinkRaw = wire::kLinkTypeRaw,              // raw IP, version from the first nibble
  kLinkLoop = wire::kLinkTypeLoop,            // OpenBSD loopback: 4-byte address family, network order
  kLinkLinuxSll = wire::kLinkTypeLinuxSll,    // Linux cooked v1: 16-byte header, protocol at 14
  kLinkIpv4 = wire::kLinkTypeIpv4,            // raw IPv4
  kLinkIpv6 = wire::kLinkTypeIpv6,            // raw IPv6
  kLinkLinuxSll2 = wire::kLinkTypeLinuxSll2,  // Linux cooked v2: 20-byte header, protocol at 0
};

bool link_type_supported(uint32_t link_type);

enum Fragment : uint8_t { kFragNone = 0, kFragFirst = 1, kFragLater = 2 };

enum Natt : uint8_t { kNattNone = 0, kNattIke = 1, kNattEsp = 2, kNattKeepalive = 3 };

// The first problem found in a packet. Names (see malformed_name) are part of
// the CLI contract: they appear as "malformed" in `nfsieve inspect --json`.
enum Malformed : uint8_t {
  kOk = 0,
  kLinkTruncated,    // link-layer header cut short
  kIpTruncated,      // fewer bytes than the fixed IPv4 (20) / IPv6 (40) header
  kIpVersion,        // version nibble disagrees with the link layer
  kIpHeaderLength,   // IPv4 IHL < 5 or IHL*4 past the bytes we have
  kIpTotalLength,    // IPv4 total length shorter than its own header
  kExtTruncated,     // IPv6 extension header runs past the packet
  kExtChain,         // more than kMaxExtHeaders extension headers
  kAhTruncated,      // fewer than 12 bytes of AH (next header .. sequence number)
  kAhLength,         // AH length field below 12 bytes (walked over anyway) or past the packet
  kUdpTruncated,     // fewer than 8 bytes of UDP header
  kUdpLength,        // UDP length < 8 or past the IP payload
  kTcpTruncated,     // fewer than 20 bytes of TCP header
  kTcpHeaderLength,  // TCP data offset < 5 or past the packet
  kIcmpTruncated,    // fewer than 8 bytes of ICMP / ICMPv6 header
  kEspTruncated,     // fewer than 8 bytes of ESP header (SPI + sequence)
  kNattTruncated,    // UDP 4500 payload too short to tell marker from ESP
  kIkeTruncated,     // fewer than 28 bytes of IKE header
  kIkeLength,        // IKE length field < 28 or past the UDP payload
  kMalformedCount
};

const char* malformed_name(uint8_t code);

constexpr int kMaxExtHeaders = 32;
constexpr int kMaxVlanTags = 8;

// Bits of Decoded::present.
enum Present : uint8_t {
  kHasPorts = 1 << 0,
  kHasSpi = 1 << 1,  // ESP SPI (IP protocol 50 or ESP-in-UDP)
  kHasEspSeq = 1 << 2,
  kHasAh = 1 << 3,
  kHasIcmp = 1 << 4,
  kHasIke = 1 << 5,
};

struct Decoded {
  uint8_t family;     // 0: not IP (or IP header unreadable), 4, 6
  uint8_t proto;      // upper-layer protocol after IPv6 ext headers and AH
  uint8_t fragment;   // Fragment
  uint8_t ttl;        // TTL / hop limit
  uint8_t malformed;  // Malformed
  uint8_t natt;       // Natt, for UDP 4500
  uint8_t present;    // Present bits
  uint8_t ip_proto;   // protocol / next-header field of the IP header itself
  uint8_t src[16];    // IPv4 uses the first 4 bytes
  uint8_t dst[16];
  uint32_t total_length;  // IPv4 total length; IPv6 40 + payload length
  uint16_t sport, dport;
  uint32_t spi;  // ESP SPI
  uint32_t esp_seq;
  uint32_t ah_spi;
  uint8_t icmp_type, icmp_code;
  uint8_t ike_version;  // major version nibble (1 or 2 for real IKE)
  uint8_t ike_exchange;
  uint8_t ike_flags;
  uint8_t ike_next_payload;
  uint16_t l3_offset;  // offset of the IP header in the frame
  uint32_t ike_msgid;
  uint32_t ike_length;
  uint8_t ike_ispi[8];
  uint8_t ike_rspi[8];
  uint16_t l4_offset;    // offset of the upper-layer header in the frame
  uint16_t frag_offset;  // fragment offset in 8-byte units (IPv4 or IPv6 fragment header)
  // The protocol as netfilter's ipv6_find_hdr() finds it (ip6tables -p):
  // it reads only the first bytes of each extension header before jumping
  // over it, so it can name an upper layer our strict walk calls truncated.
  // IPv4: the IP header's protocol field.
  uint8_t nf_proto;
  uint8_t nf_status;  // NfStatus
  uint16_t nf_avail;  // bytes present from the header nf_proto names (IPv4: from the end of the IP header), capped at 65535
  // One byte of small netfilter facts (bit 0, then bits 1-2, then 3-4; the
  // JavaScript reader unpacks the same bits, and the property test compares
  // them with the reference decoder on every frame):
  // nf_later: 1 when the walk stopped at a fragment header with a non-zero
  // offset: netfilter's fragoff, so transport matches fail there without
  // dropping, even when the rest of that fragment header is cut off.
  // nf_ah (NfAh): IPv6, what ip6tables' -m ah sees: the first AH as
  // ipv6_find_hdr(..., NEXTHDR_AUTH) finds it; kNfAhNone in IPv4.
  // nft_status (NfStatus): whether iptables-nft's l4proto walk succeeded.
  // nft_ports (NftPorts): how many of nft_sport and nft_dport are there.
  uint8_t nf_later : 1;
  uint8_t nf_ah : 2;
  uint8_t nft_status : 2;
  uint8_t nft_ports : 2;
  uint8_t : 1;
  // iptables-nft's meta l4proto (nft_set_pktinfo_ipv6): the same walk with
  // IP6_FH_F_AUTH, which stops at the first AH (51). IPv4: the header's field.
  uint8_t nft_proto;
  // IKEv2: the message type of the first payload when that payload is a
  // Notify (type 41) whose fixed 8 bytes are present; 0 otherwise (0 is no
  // notify type). COOKIE (16390) there marks a retried IKE_SA_INIT.
  uint16_t ike_first_notify;
  // What iptables-nft's port loads (2 bytes at transport offset 0 and 2,
  // nft_payload_fast_eval) read on Linux 6.18: from the transport offset of
  // nftables' packet info, which is the IP header length in IPv4 (later
  // fragments included), where the l4proto walk stopped in IPv6, and 0 (the
  // IPv6 header itself) for an IPv6 later fragment, whose offset
  // ipv6_find_hdr() leaves unset. Only the bytes the packet has: see nft_ports.
  uint16_t nft_sport, nft_dport;
};

enum NfStatus : uint8_t { kNfOk = 0, kNfBadMsg = 1, kNfNoEnt = 2 };

// Decoded::nft_ports: no transport offset or fewer than 2 bytes there; 2 or 3
// bytes (nft_sport only); 4 or more (both).
enum NftPorts : uint8_t { kNftPortsNone = 0, kNftPortsSource = 1, kNftPortsBoth = 2 };

// IPv6 -m ah: kNfAhFound (the SPI is ah_spi), kNfAhNone (no AH before the
// upper layer or a later fragment: no match, no drop), kNfAhDrop (a header
// on the way or the AH itself is cut short: the match drops the packet).
enum NfAh : uint8_t { kNfAhFound = 0, kNfAhNone = 1, kNfAhDrop = 2 };

static_assert(sizeof(Decoded) == 108, "Decoded is a fixed 108-byte record");
static_assert(offsetof(Decoded, src) == 8, "layout");
static_assert(offsetof(Decoded, total_length) == 40, "layout");
static_assert(offsetof(Decoded, spi) == 48, "layout");
static_assert(offsetof(Decoded, icmp_type) == 60, "layout");
static_assert(offsetof(Decoded, l3_offset) == 66, "layout");
static_assert(offsetof(Decoded, ike_msgid) == 68, "layout");
static_assert(offsetof(Decoded, ike_ispi) == 76, "layout");
static_assert(offsetof(Decoded, l4_offset) == 92, "layout");
static_assert(offsetof(Decoded, nf_proto) == 96, "layout");
static_assert(offsetof(Decoded, ike_first_notify) == 102, "layout");
static_assert(offsetof(Decoded, nft_sport) == 104, "layout");

// IKE wire values the classifier's derived IKE keys use (RFC 7296, RFC 2408).
constexpr uint8_t kIkeExchangeSaInit = 34;     // IKEv2 IKE_SA_INIT
constexpr uint8_t kIkeExchangeMainMode = 2;    // IKEv1 Identity Protection
constexpr uint8_t kIkeExchangeAggressive = 4;  // IKEv1 Aggressive
constexpr uint8_t kIkeFlagInitiator = 0x08;    // IKEv2 header flags
constexpr uint8_t kIkeFlagResponse = 0x20;
constexpr uint8_t kIkePayloadNotify = 41;     // IKEv2 Notify payload
constexpr uint16_t kIkeNotifyCookie = 16390;  // COOKIE (RFC 7296 section 2.6)
constexpr size_t kIkeNotifyFixed = 8;         // generic header 4 + protocol, SPI size, type 4

// The derived keys of the ike.initial and ike.cookie table fields.
enum IkeInitial : uint8_t { kIkeNotInitial = 0, kIkeInitialV2 = 1, kIkeInitialV1 = 2, kIkeInitialAbsent = 3 };
enum IkeCookie : uint8_t { kIkeNoCookie = 0, kIkeHasCookie = 1, kIkeCookieAbsent = 2 };
// Initial request: IKEv2 IKE_SA_INIT with the Initiator flag, without the
// Response flag, responder SPI zero; or IKEv1's first Main or Aggressive Mode
// message (responder cookie zero).
uint8_t ike_initial_key(const Decoded& d);
// A retried IKE_SA_INIT: an IKEv2 initial request whose first payload is COOKIE.
uint8_t ike_cookie_key(const Decoded& d);

// Decode a raw IP packet (version taken from the first nibble).
void decode_ip(const uint8_t* data, size_t len, Decoded* out);

// Decode the IP packet at frame[l3..len). version 4 or 6 is what the link
// layer announced (a mismatch is kIpVersion); 0 takes it from the first nibble.
// `out` must be zeroed by the caller.
void decode_ip_at(const uint8_t* frame, size_t l3, size_t len, int version, Decoded* out);

// Decode a link-layer frame of the given pcap link type.
void decode_frame(uint32_t link_type, const uint8_t* data, size_t len, Decoded* out);

}  // namespace nfsieve
