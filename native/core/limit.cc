// Token buckets and the bounded per-source table (see limit.h for the arithmetic).
#include "limit.h"

#include <time.h>

#include <cstring>
#include <random>

namespace nfsieve {
namespace {

uint64_t gcd(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

inline uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint64_t be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

inline uint64_t keep_bits(uint64_t v, int bits) {  // the top `bits` (0..64) of v
  return bits <= 0 ? 0 : bits >= 64 ? v : v & ~(~0ull >> bits);
}

}  // namespace

bool bucket_params(const LimitRec& rec, BucketParams* out) {
  if (rec.rate == 0 || rec.burst == 0 || rec.period_ns == 0) return false;
  const uint64_t g = gcd(rec.rate, rec.period_ns);
  out->cost = rec.period_ns / g;
  out->refill = rec.rate / g;
  if (out->cost > (uint64_t(1) << 62) / rec.burst) return false;
  out->cap = out->cost * rec.burst;
  return true;
}

bool bucket_take(uint64_t* credit, uint64_t* last, uint64_t now, const BucketParams& p) {
  if (now > *last) {
    const uint64_t dt = now - *last;
    const uint64_t room = p.cap - *credit;
    // dt * refill is only computed below ceil(room / refill), so it stays under cap + refill.
    if (dt >= (room + p.refill - 1) / p.refill)
      *credit = p.cap;
    else
      *credit += dt * p.refill;
    *last = now;
  }
  if (*credit < p.cost) return false;
  *credit -= p.cost;
  return true;
}

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void masked_key(const uint8_t* a, int family, int bits, uint64_t* k0, uint64_t* k1) {
  if (family == 4) {
    uint64_t v = uint64_t(a[0]) << 56 | uint64_t(a[1]) << 48 | uint64_t(a[2]) << 40 | uint64_t(a[3]) << 32;
    *k0 = keep_bits(v, bits);
    *k1 = 0;
    return;
  }
  *k0 = keep_bits(be64(a), bits);
  *k1 = keep_bits(be64(a + 8), bits - 64);
}

SourceBuckets::SourceBuckets(uint32_t max_sources, uint64_t seed) : seed_(seed) {
  nodes_.resize(max_sources);
  uint32_t slots = 2;
  while (slots < 2ull * max_sources) slots <<= 1;
  slots_.assign(slots, kNone);
  mask_ = slots - 1;
}

uint32_t SourceBuckets::home(uint64_t k0, uint64_t k1, uint32_t family) const {
  return static_cast<uint32_t>(mix(k0 ^ seed_ ^ mix(k1 + family)) & mask_);
}

uint32_t SourceBuckets::find_slot(uint64_t k0, uint64_t k1, uint32_t family) const {
  // At most half the slots are in use, so an empty one ends every probe.
  for (uint32_t s = home(k0, k1, family);; s = (s + 1) & mask_) {
    const uint32_t n = slots_[s];
    if (n == kNone) return s;
    const Node& e = nodes_[n];
    if (e.k0 == k0 && e.k1 == k1 && e.family == family) return s;
  }
}

// Linear probing's deletion: pull later entries of the run back over the hole
// unless their home lies cyclically in (hole, entry].
void SourceBuckets::erase_slot(uint32_t hole) {
  slots_[hole] = kNone;
  for (uint32_t s = (hole + 1) & mask_; slots_[s] != kNone; s = (s + 1) & mask_) {
    const Node& e = nodes_[slots_[s]];
    const uint32_t h = home(e.k0, e.k1, e.family);
    const bool stays = hole <= s ? (h > hole && h <= s) : (h > hole || h <= s);
    if (stays) continue;
    slots_[hole] = slots_[s];
    slots_[s] = kNone;
    hole = s;
  }
}

void SourceBuckets::unlink(uint32_t n) {
  Node& e = nodes_[n];
  if (e.prev != kNone)
    nodes_[e.prev].next = e.next;
  else
    head_ = e.next;
  if (e.next != kNone)
    nodes_[e.next].prev = e.prev;
  else
    tail_ = e.prev;
}

void SourceBuckets::push_front(uint32_t n) {
  Node& e = nodes_[n];
  e.prev = kNone;
  e.next = head_;
  if (head_ != kNone) nodes_[head_].prev = n;
  head_ = n;
  if (tail_ == kNone) tail_ = n;
}

bool SourceBuckets::take(uint64_t k0, uint64_t k1, uint32_t family, uint64_t now, const BucketParams& p) {
  uint32_t slot = find_slot(k0, k1, family);
  uint32_t n = slots_[slot];
  if (n != kNone) {
    if (n != head_) {
      unlink(n);
      push_front(n);
    }
    Node& e = nodes_[n];
    return bucket_take(&e.credit, &e.last, now, p);
  }
  if (used_ < nodes_.size()) {
    n = used_++;
  } else {
    n = tail_;  // the least recently used source gives its node up
    const Node& old = nodes_[n];
    erase_slot(find_slot(old.k0, old.k1, old.family));
    unlink(n);
    evictions_.store(evictions_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    slot = find_slot(k0, k1, family);  // the shift may have moved the run
  }
  Node& e = nodes_[n];
  e.k0 = k0;
  e.k1 = k1;
  e.family = family;
  e.credit = p.cap;
  e.last = now;
  slots_[slot] = n;
  push_front(n);
  return bucket_take(&e.credit, &e.last, now, p);
}

// A seed per table for the source hash, so that a flood cannot aim at one
// probe run without seeing the table; the clock when no random device opens.
static uint64_t random_seed() {
  try {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd();
  } catch (...) { return mix(monotonic_ns()); }
}

LimitState::LimitState(const Table& table) {
  for (uint32_t i = 0; i < table.limit_count(); i++) {
    std::unique_ptr<One> one(new One());
    one->rec = table.limit(i);
    bucket_params(one->rec, &one->params);  // the loader has checked that it succeeds
    if (one->rec.per == kLimitPerSource) { one->sources.reset(new SourceBuckets(one->rec.max_sources, random_seed())); }
    limits_.push_back(std::move(one));
  }
}

bool LimitState::take(uint32_t i, const Decoded& d, uint64_t now) {
  One& one = *limits_[i];
  if (!one.sources) {
    one.lock.lock();
    if (!one.started) {
      one.started = true;
      one.credit = one.params.cap;
      one.last = now;
    }
    const bool ok = bucket_take(&one.credit, &one.last, now, one.params);
    one.lock.unlock();
    return ok;
  }
  uint64_t k0, k1;
  masked_key(d.src, d.family, d.family == 4 ? one.rec.prefix4 : one.rec.prefix6, &k0, &k1);
  SourceBuckets& s = *one.sources;
  s.lock().lock();
  const bool ok = s.take(k0, k1, d.family, now, one.params);
  s.lock().unlock();
  return ok;
}

uint64_t LimitState::evictions(uint32_t i) const {
  return i < limits_.size() && limits_[i]->sources ? limits_[i]->sources->evictions() : 0;
}

uint32_t LimitState::sources(uint32_t i) const {
  if (i >= limits_.size()) return 0;
  if (!limits_[i]->sources) {
    One& one = *limits_[i];
    one.lock.lock();
    const bool started = one.started;
    one.lock.unlock();
    return started ? 1 : 0;
  }
  SourceBuckets& s = *limits_[i]->sources;
  s.lock().lock();
  uint32_t n = s.size();
  s.lock().unlock();
  return n;
}

size_t LimitState::byte_size() const {
  size_t n = 0;
  for (const auto& one : limits_) n += sizeof(One) + (one->sources ? one->sources->byte_size() + sizeof(SourceBuckets) : 0);
  return n;
}

}  // namespace nfsieve
