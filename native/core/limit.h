// Rate limits (the `limit` rule condition): token buckets as iptables'
// hashlimit and nftables' `limit rate` keep them, one per rule or one per
// source address, in exact integer arithmetic.
//
// A bucket holds credit. One token is `cost` credits and time adds `refill`
// credits per nanosecond, where cost = period / g and refill = rate / g with
// g = gcd(rate, period): "rate packets per period nanoseconds" then holds
// exactly, with no rounding, for any rate and unit (3/s costs 1e9 credits and
// gains 3 per ns). A bucket is full at burst * cost credits, starts full, and
// a packet passes when at least `cost` credits are there (then spent). The
// clock is the caller's monotonic nanoseconds; a time earlier than the
// bucket's last one (another thread's batch read the clock later) adds
// nothing and does not move the bucket back. The loader (table.cc) refuses
// limits whose burst * cost does not fit 62 bits, so no sum here overflows.
//
// Per-source buckets live in a table made once, at load: max_sources nodes
// and an open-addressing index of twice as many slots (linear probing,
// seeded hash, deletion by backward shift), the nodes also on a recency list;
// when every node is in use, a new source takes the least recently used one
// (counted as an eviction). No allocation per packet. Threads (one per
// NFQUEUE queue) share the buckets under a short spin lock per limit: a
// lookup and a few integer operations, so contention stays in the tens of
// nanoseconds (docs/benchmarks.md has the measured cost).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "decode.h"
#include "table.h"

namespace nfsieve {

struct BucketParams {
  uint64_t cost = 1;    // credits per token
  uint64_t refill = 1;  // credits per nanosecond
  uint64_t cap = 1;     // burst * cost
};

// The exact parameters of a limit record; false when they do not fit (see above).
bool bucket_params(const LimitRec& rec, BucketParams* out);

// One bucket step at time `now`: refill, then take a token if there is one.
bool bucket_take(uint64_t* credit, uint64_t* last, uint64_t now, const BucketParams& p);

class SpinLock {
 public:
  static void relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  // Spin briefly (the holder needs tens of nanoseconds), then yield the CPU:
  // with more queue threads than cores the holder may itself be waiting for one.
  void lock() {
    for (int spins = 0; flag_.exchange(true, std::memory_order_acquire);) {
      while (flag_.load(std::memory_order_relaxed)) {
        if (++spins < 128)
          relax();
        else
          std::this_thread::yield();
      }
    }
  }
  void unlock() { flag_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> flag_{false};
};

// The per-source buckets of one limit.
class SourceBuckets {
 public:
  SourceBuckets(uint32_t max_sources, uint64_t seed);
  // The bucket of `key` (made full when new, evicting the least recently used when full).
  bool take(uint64_t k0, uint64_t k1, uint32_t family, uint64_t now, const BucketParams& p);
  uint32_t size() const { return used_; }
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }
  size_t byte_size() const { return nodes_.capacity() * sizeof(Node) + slots_.capacity() * sizeof(uint32_t); }
  SpinLock& lock() { return lock_; }

 private:
  static constexpr uint32_t kNone = 0xffffffffu;
  struct Node {
    uint64_t k0, k1;
    uint64_t credit, last;
    uint32_t prev, next;  // recency list: head most recent
    uint32_t family, pad;
  };
  std::vector<Node> nodes_;
  std::vector<uint32_t> slots_;  // node index or kNone
  uint32_t mask_ = 0, used_ = 0, head_ = kNone, tail_ = kNone;
  uint64_t seed_;
  std::atomic<uint64_t> evictions_{0};
  SpinLock lock_;

  uint32_t home(uint64_t k0, uint64_t k1, uint32_t family) const;
  uint32_t find_slot(uint64_t k0, uint64_t k1, uint32_t family) const;  // slot holding the key, or of the empty end
  void erase_slot(uint32_t slot);
  void unlink(uint32_t n);
  void push_front(uint32_t n);
};

// Every limit of a table: state made at load, kept while the classifier lives
// (set changes keep it; a reload makes a new classifier with fresh buckets).
class LimitState {
 public:
  explicit LimitState(const Table& table);
  size_t count() const { return limits_.size(); }
  // Take a token of limit `i` for a packet at `now` (ns): false when over the limit.
  bool take(uint32_t i, const Decoded& d, uint64_t now);
  uint64_t evictions(uint32_t i) const;
  uint32_t sources(uint32_t i) const;
  size_t byte_size() const;

 private:
  struct One {
    LimitRec rec;
    BucketParams params;
    SpinLock lock;  // per-rule bucket
    uint64_t credit = 0, last = 0;
    bool started = false;
    std::unique_ptr<SourceBuckets> sources;
  };
  std::vector<std::unique_ptr<One>> limits_;
};

// CLOCK_MONOTONIC in nanoseconds (the clock Node's process.hrtime reads).
uint64_t monotonic_ns();

// The address `a` of a family with all but its first `bits` bits cleared, as two words.
void masked_key(const uint8_t* a, int family, int bits, uint64_t* k0, uint64_t* k1);

}  // namespace nfsieve
