#include "sets.h"

#include <algorithm>
#include <cstring>

namespace nfsieve {
namespace {

uint32_t mask_v4(const uint8_t* b, int length) {
  uint32_t v = static_cast<uint32_t>(b[0]) << 24 | static_cast<uint32_t>(b[1]) << 16 | static_cast<uint32_t>(b[2]) << 8 | b[3];
  return length == 0 ? 0 : v & (0xffffffffu << (32 - length));
}

Key128 mask_v6(const uint8_t* b, int length) {
  Key128 k{0, 0};
  for (int i = 0; i < 8; i++) k.hi = k.hi << 8 | b[i];
  for (int i = 8; i < 16; i++) k.lo = k.lo << 8 | b[i];
  if (length <= 64) {
    k.lo = 0;
    k.hi = length == 0 ? 0 : k.hi & (~0ull << (64 - length));
  } else if (length < 128) {
    k.lo &= ~0ull << (128 - length);
  }
  return k;
}

}  // namespace

void AddressSet::refresh_lengths(int family) {
  std::vector<int>& out = family == 4 ? v4_lengths_ : v6_lengths_;
  out.clear();
  int top = family == 4 ? 32 : 128;
  for (int l = top; l >= 0; l--) {
    bool used = family == 4 ? !v4_[l].empty() : !v6_[l].empty();
    if (used) out.push_back(l);
  }
}

bool AddressSet::add(int family, const uint8_t* bytes, int length) { return change(family, bytes, length, true); }

bool AddressSet::remove(int family, const uint8_t* bytes, int length) { return change(family, bytes, length, false); }

bool AddressSet::change(int family, const uint8_t* bytes, int length, bool add) {
  bool changed;
  if (family == 4) {
    if (length < 0 || length > 32) return false;
    const uint32_t k = mask_v4(bytes, length);
    changed = add ? v4_[length].insert(k) : v4_[length].erase(k);
  } else {
    if (length < 0 || length > 128) return false;
    const Key128 k = mask_v6(bytes, length);
    changed = add ? v6_[length].insert(k) : v6_[length].erase(k);
  }
  if (changed) {
    size_ = add ? size_ + 1 : size_ - 1;
    refresh_lengths(family);
  }
  return changed;
}

bool AddressSet::contains(int family, const uint8_t* bytes) const {
  if (family == 4) {
    for (int l : v4_lengths_)
      if (v4_[l].contains(mask_v4(bytes, l))) return true;
    return false;
  }
  for (int l : v6_lengths_)
    if (v6_[l].contains(mask_v6(bytes, l))) return true;
  return false;
}

void AddressSet::clear() {
  for (auto& s : v4_) s.clear();
  for (auto& s : v6_) s.clear();
  v4_lengths_.clear();
  v6_lengths_.clear();
  size_ = 0;
}

bool SpiSet::add(uint32_t lo, uint32_t hi) {
  if (lo == hi) return values_.insert(lo);
  auto r = std::make_pair(lo, hi);
  if (std::find(ranges_.begin(), ranges_.end(), r) != ranges_.end()) return false;
  ranges_.push_back(r);
  return true;
}

bool SpiSet::remove(uint32_t lo, uint32_t hi) {
  if (lo == hi) return values_.erase(lo);
  auto it = std::find(ranges_.begin(), ranges_.end(), std::make_pair(lo, hi));
  if (it == ranges_.end()) return false;
  ranges_.erase(it);
  return true;
}

bool SpiSet::contains(uint32_t spi) const {
  if (values_.contains(spi)) return true;
  for (const auto& r : ranges_)
    if (spi >= r.first && spi <= r.second) return true;
  return false;
}

}  // namespace nfsieve
