// Named sets: gateway addresses and prefixes, SPIs. They live beside the
// table, not inside it, so members can be added and removed while a
// classifier runs, without recompiling its rules.
//
// Address sets keep one hash set per prefix length in use; a lookup probes
// each length present (one probe for a set of host addresses, whatever its
// size). SPI sets keep single values in a hash set and wider ranges in a list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flat_set.h"

namespace nfsieve {

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

class AddressSet {
 public:
  // Add or remove a prefix; returns false when nothing changed (already in / not in).
  bool add(int family, const uint8_t* bytes, int length);
  bool remove(int family, const uint8_t* bytes, int length);
  bool contains(int family, const uint8_t* bytes) const;
  size_t size() const { return size_; }
  void clear();

 private:
  FlatSet<uint32_t, U32Hash> v4_[33];
  FlatSet<Key128, Key128Hash> v6_[129];
  std::vector<int> v4_lengths_, v6_lengths_;  // lengths in use, longest first
  size_t size_ = 0;
  bool change(int family, const uint8_t* bytes, int length, bool add);
  void refresh_lengths(int family);
};

class SpiSet {
 public:
  bool add(uint32_t lo, uint32_t hi);
  bool remove(uint32_t lo, uint32_t hi);
  bool contains(uint32_t spi) const;
  size_t size() const { return values_.size() + ranges_.size(); }
  void clear() { values_.clear(); ranges_.clear(); }

 private:
  FlatSet<uint32_t, U32Hash> values_;
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;
};

struct NamedSet {
  std::string name;
  uint8_t kind;  // 1 address, 2 spi
  AddressSet addresses;
  SpiSet spis;
};

}  // namespace nfsieve
