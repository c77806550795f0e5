#include "sets.h"

#include <time.h>

#include <algorithm>
#include <cstring>

namespace nfsieve {
namespace {

// Members by origin (a member with both origins counts in both).
SetSizes count_origins(const std::vector<MemberInfo>& members) {
  SetSizes s;
  for (const MemberInfo& m : members) {
    s.file += (m.origins & kOriginFile) != 0;
    s.live += (m.origins & kOriginLive) != 0;
  }
  s.total = members.size();
  return s;
}

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

uint16_t table_of(int family, int length) { return static_cast<uint16_t>(family * 256 + length); }

// The tag after adding `add` (with this expiry when live) and removing `remove`.
uint8_t next_tag(uint8_t t, uint8_t add, uint8_t remove, int64_t expires_ms) {
  uint8_t n = static_cast<uint8_t>((t | add) & ~remove);
  if (add & kOriginLive) n = static_cast<uint8_t>(expires_ms ? n | kTagTimed : n & ~kTagTimed);
  if (remove & kOriginLive) n &= static_cast<uint8_t>(~kTagTimed);
  return (n & kOriginAll) ? n : 0;
}

void keep_expiry(Expiries& e, const ExpiryKey& k, uint8_t tag, int64_t expires_ms) {
  if (tag & kTagTimed)
    e.put(k, expires_ms);
  else
    e.erase(k);
}

}  // namespace

int64_t steady_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The packet path's clock: the same clock at tick resolution (a few ms; a
// timeout is whole seconds), read without leaving the vDSO's fast path.
int64_t coarse_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void AddressSet::refresh_lengths(int family) {
  std::vector<int>& out = family == 4 ? v4_lengths_ : v6_lengths_;
  out.clear();
  int top = family == 4 ? 32 : 128;
  for (int l = top; l >= 0; l--) {
    bool used = family == 4 ? !v4_[l].empty() : !v6_[l].empty();
    if (used) out.push_back(l);
  }
}

template <typename K, typename H>
bool AddressSet::update(FlatSet<K, H>& set, const K& k, ExpiryKey ek, uint8_t add, uint8_t remove, int64_t expires_ms) {
  const uint8_t t = set.tag(k);
  const uint8_t n = next_tag(t, add, remove, expires_ms);
  const bool changed = add ? !(t & add) : (t & remove) != 0;
  if ((add | remove) & kOriginLive) keep_expiry(expiries_, ek, n, expires_ms);
  if (n == t) return changed;
  const bool was = t != 0, is = n != 0;
  set.set_tag(k, n);
  if (was != is) {
    size_ = is ? size_ + 1 : size_ - 1;
    refresh_lengths(ek.table >> 8);
  }
  return changed;
}

bool AddressSet::add(int family, const uint8_t* bytes, int length, uint8_t origin, int64_t expires_ms) {
  if (family == 4) {
    if (length < 0 || length > 32) return false;
    const uint32_t k = mask_v4(bytes, length);
    return update(v4_[length], k, ExpiryKey{{0, k}, table_of(4, length)}, origin, 0, expires_ms);
  }
  if (family != 6 || length < 0 || length > 128) return false;
  const Key128 k = mask_v6(bytes, length);
  return update(v6_[length], k, ExpiryKey{k, table_of(6, length)}, origin, 0, expires_ms);
}

bool AddressSet::remove(int family, const uint8_t* bytes, int length, uint8_t origins) {
  if (family == 4) {
    if (length < 0 || length > 32) return false;
    const uint32_t k = mask_v4(bytes, length);
    return update(v4_[length], k, ExpiryKey{{0, k}, table_of(4, length)}, 0, origins, 0);
  }
  if (family != 6 || length < 0 || length > 128) return false;
  const Key128 k = mask_v6(bytes, length);
  return update(v6_[length], k, ExpiryKey{k, table_of(6, length)}, 0, origins, 0);
}

// A present member matches unless it is only live, timed and past its expiry:
// the clock and the side map are read for timed members only.
bool AddressSet::alive(uint8_t tag, const ExpiryKey& ek) const {
  if (!(tag & kTagTimed) || (tag & kOriginFile)) return true;
  const int64_t* expires = expiries_.payload(ek);
  return expires && *expires > coarse_now_ms();
}

bool AddressSet::matches(int family, const uint8_t* bytes, int max_length) const {
  if (family == 4) {
    for (int l : v4_lengths_) {
      if (l > max_length) continue;
      const uint32_t k = mask_v4(bytes, l);
      const uint8_t t = v4_[l].tag(k);
      if (t && alive(t, ExpiryKey{{0, k}, table_of(4, l)})) return true;
    }
    return false;
  }
  for (int l : v6_lengths_) {
    if (l > max_length) continue;
    const Key128 k = mask_v6(bytes, l);
    const uint8_t t = v6_[l].tag(k);
    if (t && alive(t, ExpiryKey{k, table_of(6, l)})) return true;
  }
  return false;
}

void AddressSet::clear() {
  for (auto& s : v4_) s.clear();
  for (auto& s : v6_) s.clear();
  v4_lengths_.clear();
  v6_lengths_.clear();
  expiries_.clear();
  size_ = 0;
}

template <typename F>
void AddressSet::each(F f) const {
  for (int l : v4_lengths_) v4_[l].for_each([&](uint32_t k, uint8_t t) { f(4, l, Key128{0, k}, t); });
  for (int l : v6_lengths_) v6_[l].for_each([&](const Key128& k, uint8_t t) { f(6, l, k, t); });
}

namespace {

void key_bytes(int family, const Key128& k, uint8_t* out) {
  if (family == 4) {
    for (int i = 0; i < 4; i++) out[i] = static_cast<uint8_t>(k.lo >> (24 - 8 * i));
    return;
  }
  for (int i = 0; i < 8; i++) out[i] = static_cast<uint8_t>(k.hi >> (56 - 8 * i));
  for (int i = 0; i < 8; i++) out[8 + i] = static_cast<uint8_t>(k.lo >> (56 - 8 * i));
}

}  // namespace

size_t AddressSet::flush(uint8_t origins) {
  std::vector<MemberInfo> members;
  list(&members, INT64_MIN);
  size_t n = 0;
  for (const MemberInfo& m : members)
    if (m.origins & origins) n += remove(m.element.family, m.element.bytes, m.element.length, origins);
  return n;
}

size_t AddressSet::expire(int64_t now_ms) {
  std::vector<SetElement> dead;
  expiries_.for_each_payload([&](const ExpiryKey& k, int64_t expires) {  // the timed members only
    if (expires > now_ms) return;
    SetElement e;
    e.family = k.table >> 8;
    e.length = k.table & 0xff;
    key_bytes(e.family, k.key, e.bytes);
    dead.push_back(e);
  });
  for (const SetElement& e : dead) remove(e.family, e.bytes, e.length, kOriginLive);
  return dead.size();
}

size_t AddressSet::due(int64_t now_ms) const {
  size_t n = 0;
  expiries_.for_each_payload([&](const ExpiryKey&, int64_t expires) { n += expires <= now_ms; });
  return n;
}

bool AddressSet::add_would_grow(int family, int length) const {
  if (expiries_.full()) return true;
  if (family == 4) return length >= 0 && length <= 32 && v4_[length].full();
  return length >= 0 && length <= 128 && v6_[length].full();
}

void AddressSet::list(std::vector<MemberInfo>* out, int64_t now_ms) const {
  each([&](int family, int l, const Key128& k, uint8_t t) {
    MemberInfo m{};
    m.element.kind = kSetAddress;
    m.element.family = family;
    m.element.length = l;
    key_bytes(family, k, m.element.bytes);
    m.origins = t & kOriginAll;
    m.expires_ms = 0;
    if (t & kTagTimed) {
      const int64_t* expires = expiries_.payload(ExpiryKey{k, table_of(family, l)});
      m.expires_ms = expires ? *expires : now_ms;
      if (m.expires_ms <= now_ms) {  // the live origin has run out
        m.origins &= static_cast<uint8_t>(~kOriginLive);
        m.expires_ms = 0;
      }
    }
    if (m.origins) out->push_back(m);
  });
}

void AddressSet::merge_live(const AddressSet& from, int64_t now_ms) {
  std::vector<MemberInfo> members;
  from.list(&members, now_ms);
  for (const MemberInfo& m : members)
    if (m.origins & kOriginLive) add(m.element.family, m.element.bytes, m.element.length, kOriginLive, m.expires_ms);
}

SetSizes AddressSet::sizes(int64_t now_ms) const {
  std::vector<MemberInfo> members;
  list(&members, now_ms);
  return count_origins(members);
}

// --- SPI sets ---

int64_t SpiSet::value_expiry(uint8_t tag, uint32_t v) const {
  if (!(tag & kTagTimed)) return 0;
  const int64_t* expires = expiries_.payload(ExpiryKey{{0, v}, 0});
  return expires ? *expires : 1;
}

bool SpiSet::alive_value(uint8_t tag, uint32_t v) const {
  if (!(tag & kTagTimed) || (tag & kOriginFile)) return true;
  return value_expiry(tag, v) > coarse_now_ms();
}

bool SpiSet::add(uint32_t lo, uint32_t hi, uint8_t origin, int64_t expires_ms) {
  if (lo > hi) return false;
  if (lo == hi) {
    const uint8_t t = values_.tag(lo);
    const uint8_t n = next_tag(t, origin, 0, expires_ms);
    if (origin & kOriginLive) keep_expiry(expiries_, ExpiryKey{{0, lo}, 0}, n, expires_ms);
    values_.set_tag(lo, n);
    return !(t & origin);
  }
  for (Range& r : ranges_)
    if (r.lo == lo && r.hi == hi) {
      const uint8_t t = r.tag;
      r.tag = next_tag(t, origin, 0, expires_ms);
      if (origin & kOriginLive) r.expires_ms = (r.tag & kTagTimed) ? expires_ms : 0;
      return !(t & origin);
    }
  const uint8_t n = next_tag(0, origin, 0, expires_ms);
  ranges_.push_back(Range{lo, hi, n, (n & kTagTimed) ? expires_ms : 0});
  return true;
}

bool SpiSet::remove(uint32_t lo, uint32_t hi, uint8_t origins) {
  if (lo == hi) {
    const uint8_t t = values_.tag(lo);
    if (!(t & origins)) return false;
    const uint8_t n = next_tag(t, 0, origins, 0);
    keep_expiry(expiries_, ExpiryKey{{0, lo}, 0}, n, value_expiry(t, lo));
    values_.set_tag(lo, n);
    return true;
  }
  for (auto it = ranges_.begin(); it != ranges_.end(); ++it)
    if (it->lo == lo && it->hi == hi) {
      if (!(it->tag & origins)) return false;
      it->tag = next_tag(it->tag, 0, origins, 0);
      if (!(it->tag & kTagTimed)) it->expires_ms = 0;
      if (!it->tag) ranges_.erase(it);
      return true;
    }
  return false;
}

size_t SpiSet::due(int64_t now_ms) const {
  size_t n = 0;
  expiries_.for_each_payload([&](const ExpiryKey&, int64_t expires) { n += expires <= now_ms; });
  for (const Range& r : ranges_) n += (r.tag & kTagTimed) && r.expires_ms <= now_ms;
  return n;
}

bool SpiSet::add_would_grow(uint32_t lo, uint32_t hi) const {
  return lo == hi ? values_.full() || expiries_.full() : ranges_.size() == ranges_.capacity();
}

bool SpiSet::timed() const {
  if (!expiries_.empty()) return true;
  for (const Range& r : ranges_)
    if (r.tag & kTagTimed) return true;
  return false;
}

bool SpiSet::contains(uint32_t spi) const { return matches(spi, spi); }

bool SpiSet::matches(uint32_t lo, uint32_t hi) const {
  if (lo == hi) {
    const uint8_t t = values_.tag(lo);
    if (t && alive_value(t, lo)) return true;
  }
  for (const auto& r : ranges_)
    if (lo >= r.lo && hi <= r.hi) {
      if (!(r.tag & kTagTimed) || (r.tag & kOriginFile) || r.expires_ms > coarse_now_ms()) return true;
    }
  return false;
}

void SpiSet::list(std::vector<MemberInfo>* out, int64_t now_ms) const {
  auto push = [&](uint32_t lo, uint32_t hi, uint8_t t, int64_t expires) {
    MemberInfo m{};
    m.element.kind = kSetSpi;
    m.element.lo = lo;
    m.element.hi = hi;
    m.origins = t & kOriginAll;
    m.expires_ms = (t & kTagTimed) ? expires : 0;
    if ((t & kTagTimed) && expires <= now_ms) {
      m.origins &= static_cast<uint8_t>(~kOriginLive);
      m.expires_ms = 0;
    }
    if (m.origins) out->push_back(m);
  };
  values_.for_each([&](uint32_t v, uint8_t t) { push(v, v, t, value_expiry(t, v)); });
  for (const Range& r : ranges_) push(r.lo, r.hi, r.tag, r.expires_ms);
}

size_t SpiSet::flush(uint8_t origins) {
  std::vector<MemberInfo> members;
  list(&members, INT64_MIN);
  size_t n = 0;
  for (const MemberInfo& m : members)
    if (m.origins & origins) n += remove(m.element.lo, m.element.hi, origins);
  return n;
}

size_t SpiSet::expire(int64_t now_ms) {
  std::vector<std::pair<uint32_t, uint32_t>> dead;
  expiries_.for_each_payload([&](const ExpiryKey& k, int64_t expires) {
    if (expires <= now_ms) dead.emplace_back(static_cast<uint32_t>(k.key.lo), static_cast<uint32_t>(k.key.lo));
  });
  for (const Range& r : ranges_)
    if ((r.tag & kTagTimed) && r.expires_ms <= now_ms) dead.emplace_back(r.lo, r.hi);
  for (const auto& d : dead) remove(d.first, d.second, kOriginLive);
  return dead.size();
}

void SpiSet::merge_live(const SpiSet& from, int64_t now_ms) {
  std::vector<MemberInfo> members;
  from.list(&members, now_ms);
  for (const MemberInfo& m : members)
    if (m.origins & kOriginLive) add(m.element.lo, m.element.hi, kOriginLive, m.expires_ms);
}

SetSizes SpiSet::sizes(int64_t now_ms) const {
  std::vector<MemberInfo> members;
  list(&members, now_ms);
  return count_origins(members);
}

// --- named sets ---

bool NamedSet::add(const SetElement& e, uint8_t origin, int64_t expires_ms) {
  if (e.kind != kind) return false;
  return kind == kSetAddress ? addresses.add(e.family, e.bytes, e.length, origin, expires_ms)
                             : spis.add(e.lo, e.hi, origin, expires_ms);
}

bool NamedSet::remove(const SetElement& e, uint8_t origins) {
  if (e.kind != kind) return false;
  return kind == kSetAddress ? addresses.remove(e.family, e.bytes, e.length, origins) : spis.remove(e.lo, e.hi, origins);
}

bool NamedSet::test(const SetElement& e) const {
  if (e.kind != kind) return false;
  return kind == kSetAddress ? addresses.matches(e.family, e.bytes, e.length) : spis.matches(e.lo, e.hi);
}

void NamedSet::merge_live(const NamedSet& from, int64_t now) {
  if (from.kind != kind) return;
  if (kind == kSetAddress)
    addresses.merge_live(from.addresses, now);
  else
    spis.merge_live(from.spis, now);
}

void NamedSet::list(std::vector<MemberInfo>* out, int64_t now) const {
  if (kind == kSetAddress)
    addresses.list(out, now);
  else
    spis.list(out, now);
}

}  // namespace nfsieve
