// Named sets: gateway addresses and prefixes, SPIs. They live beside the
// table, not inside it, so members can be added and removed while a
// classifier runs, without recompiling its rules.
//
// Address sets keep one hash set per prefix length in use; a lookup probes
// each length present (one probe for a set of host addresses, whatever its
// size). SPI sets keep single values in a hash set and wider ranges in a list.
//
// Every member carries its origins in its slot's tag byte: `file` (the
// policy's table put it there; a reload replaces exactly these) and `live`
// (added at run time; survives reloads). A live member may expire: the tag
// then says `timed` and the expiry (steady clock, milliseconds) waits in a
// side map that a lookup reads only when a timed member hits, so sets without
// timeouts cost what they cost before. A member matches when it is in the
// file, or live and not expired; expire() reaps what has run out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flat_set.h"
#include "wire.h"

namespace nfsieve {

// Tag bits of a member (FlatSet tags; a present member has file or live).
constexpr uint8_t kOriginFile = wire::kSetOriginFile;
constexpr uint8_t kOriginLive = wire::kSetOriginLive;
constexpr uint8_t kOriginAll = wire::kSetOriginAll;
static_assert(kOriginAll == (kOriginFile | kOriginLive), "all origins");
constexpr uint8_t kTagTimed = 4;

constexpr uint8_t kSetAddress = wire::kSetKindAddress;
constexpr uint8_t kSetSpi = wire::kSetKindSpi;

// Milliseconds of the monotonic clock: the time base of expiries.
int64_t steady_now_ms();
// The same clock at tick resolution (CLOCK_MONOTONIC_COARSE): what lookups read.
int64_t coarse_now_ms();

struct Key128 {
  uint64_t hi, lo;
  bool operator==(const Key128& o) const { return hi == o.hi && lo == o.lo; }
};
// Prefix keys end in zero bits, so every bit of the key must reach the low
// bits the table's mask keeps.
struct Key128Hash {
  size_t operator()(const Key128& k) const {
    uint64_t h = k.hi * 0x9e3779b97f4a7c15ull ^ k.lo * 0xc2b2ae3d27d4eb4full;
    h ^= h >> 32;
    h *= 0xff51afd7ed558ccdull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

// Where a timed member's expiry is kept: its table (family, length) and key.
struct ExpiryKey {
  Key128 key;
  uint16_t table;  // family * 256 + prefix length; 0 for an SPI value
  bool operator==(const ExpiryKey& o) const { return key == o.key && table == o.table; }
};
struct ExpiryKeyHash {
  size_t operator()(const ExpiryKey& k) const { return Key128Hash()(Key128{k.key.hi ^ k.table, k.key.lo}); }
};
// Expiries of timed members, inline like the members (one probe, no node).
using Expiries = FlatTable<ExpiryKey, ExpiryKeyHash, int64_t>;

// One element as the control path names it: a prefix, or an SPI range.
struct SetElement {
  uint8_t kind = kSetAddress;
  int family = 4;
  uint8_t bytes[16] = {0};
  int length = 32;
  uint32_t lo = 0, hi = 0;
};

struct MemberInfo {
  SetElement element;
  uint8_t origins;     // kOriginFile | kOriginLive
  int64_t expires_ms;  // steady clock; 0: never (or file only)
};

struct SetSizes {
  size_t file = 0, live = 0, total = 0;
};

class AddressSet {
 public:
  // Add an origin to a prefix (a live one with an expiry, 0 for none; adding
  // live again sets the expiry anew). True when the prefix lacked that origin.
  bool add(int family, const uint8_t* bytes, int length, uint8_t origin = kOriginFile, int64_t expires_ms = 0);
  // Take origins away; the member goes when it has none left. True when it had one of them.
  bool remove(int family, const uint8_t* bytes, int length, uint8_t origins = kOriginAll);
  bool contains(int family, const uint8_t* bytes) const { return matches(family, bytes, family == 4 ? 32 : 128); }
  // Whether bytes/max_length lies inside a matching member (of length <= max_length).
  bool matches(int family, const uint8_t* bytes, int max_length) const;
  size_t size() const { return size_; }
  void clear();
  // Take origins away from every member; returns how many members lost one.
  size_t flush(uint8_t origins);
  // Drop live origins whose expiry is at or before now; returns how many.
  // Walks the timed members only.
  size_t expire(int64_t now_ms);
  bool timed() const { return !expiries_.empty(); }
  // Timed members whose expiry is at or before now.
  size_t due(int64_t now_ms) const;
  // Whether adding this prefix may rebuild a hash table (O(members), not O(1)).
  bool add_would_grow(int family, int length) const;
  // Copy the live (unexpired) members of another set in, with their expiries.
  void merge_live(const AddressSet& from, int64_t now_ms);
  void list(std::vector<MemberInfo>* out, int64_t now_ms) const;
  SetSizes sizes(int64_t now_ms) const;

 private:
  FlatSet<uint32_t, U32Hash> v4_[33];
  FlatSet<Key128, Key128Hash> v6_[129];
  std::vector<int> v4_lengths_, v6_lengths_;  // lengths in use, longest first
  Expiries expiries_;
  size_t size_ = 0;
  template <typename K, typename H>
  bool update(FlatSet<K, H>& set, const K& k, ExpiryKey ek, uint8_t add, uint8_t remove, int64_t expires_ms);
  bool alive(uint8_t tag, const ExpiryKey& ek) const;
  void refresh_lengths(int family);
  template <typename F>
  void each(F f) const;  // f(family, length, Key128, tag)
};

class SpiSet {
 public:
  bool add(uint32_t lo, uint32_t hi, uint8_t origin = kOriginFile, int64_t expires_ms = 0);
  bool remove(uint32_t lo, uint32_t hi, uint8_t origins = kOriginAll);
  bool contains(uint32_t spi) const;
  // Whether every SPI of lo..hi lies inside one matching member.
  bool matches(uint32_t lo, uint32_t hi) const;
  size_t size() const { return values_.size() + ranges_.size(); }
  void clear() {
    values_.clear();
    ranges_.clear();
    expiries_.clear();
  }
  size_t flush(uint8_t origins);
  size_t expire(int64_t now_ms);
  bool timed() const;
  size_t due(int64_t now_ms) const;
  bool add_would_grow(uint32_t lo, uint32_t hi) const;
  void merge_live(const SpiSet& from, int64_t now_ms);
  void list(std::vector<MemberInfo>* out, int64_t now_ms) const;
  SetSizes sizes(int64_t now_ms) const;

 private:
  struct Range {
    uint32_t lo, hi;
    uint8_t tag;
    int64_t expires_ms;
  };
  FlatSet<uint32_t, U32Hash> values_;
  std::vector<Range> ranges_;
  Expiries expiries_;  // of timed single values
  bool alive_value(uint8_t tag, uint32_t v) const;
  int64_t value_expiry(uint8_t tag, uint32_t v) const;
};

struct NamedSet {
  std::string name;
  uint8_t kind;  // kSetAddress, kSetSpi
  AddressSet addresses;
  SpiSet spis;

  // The control path's operations on an element of this set's kind.
  bool add(const SetElement& e, uint8_t origin, int64_t expires_ms);
  bool remove(const SetElement& e, uint8_t origins);
  bool test(const SetElement& e) const;
  size_t flush(uint8_t origins) { return kind == kSetAddress ? addresses.flush(origins) : spis.flush(origins); }
  size_t expire(int64_t now) { return kind == kSetAddress ? addresses.expire(now) : spis.expire(now); }
  bool timed() const { return kind == kSetAddress ? addresses.timed() : spis.timed(); }
  size_t due(int64_t now) const { return kind == kSetAddress ? addresses.due(now) : spis.due(now); }
  bool add_would_grow(const SetElement& e) const {
    return kind == kSetAddress ? addresses.add_would_grow(e.family, e.length) : spis.add_would_grow(e.lo, e.hi);
  }
  void merge_live(const NamedSet& from, int64_t now);
  void list(std::vector<MemberInfo>* out, int64_t now) const;
  SetSizes sizes(int64_t now) const { return kind == kSetAddress ? addresses.sizes(now) : spis.sizes(now); }
};

}  // namespace nfsieve
