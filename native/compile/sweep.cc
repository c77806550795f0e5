// The sweep of one narrow field (see sweep.h).
#include "sweep.h"

#include <algorithm>
#include <cstring>

namespace nfsieve {
namespace {

constexpr double kMaxKey = 9007199254740992.0;  // 2^53: keys are exact doubles below it

struct Event {
  uint64_t key;
  uint32_t rule;
  int32_t delta;
};

// A fixed pseudo-random word per rule (splitmix64): a vector hashes as the
// XOR of its rules' words, updated in O(1) as bits flip.
inline uint64_t rule_hash(uint64_t i) {
  uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool integral(double x) { return x >= 0 && x < kMaxKey && x == static_cast<double>(static_cast<uint64_t>(x)); }

}  // namespace

VectorPool::VectorPool(size_t words)
    : words_(words), per_chunk_(static_cast<uint32_t>(std::max<size_t>(1, (size_t(1) << 17) / std::max<size_t>(1, words)))) {}

void VectorPool::append(const uint64_t* v) {
  if (count_ % per_chunk_ == 0) chunks_.emplace_back(new uint64_t[size_t(per_chunk_) * words_]);
  std::memcpy(chunks_.back().get() + size_t(count_ % per_chunk_) * words_, v, words_ * 8);
  // The summary now, while the vector is in cache.
  for (size_t s = 0; 64 * s < words_; s++) {
    uint64_t bits = 0;
    const size_t end = std::min<size_t>(64, words_ - 64 * s);
    for (size_t b = 0; b < end; b++) bits |= uint64_t(v[64 * s + b] != 0) << b;
    summaries_.push_back(bits);
  }
  count_++;
}

void VectorPool::copy_vectors(uint8_t* dst) const {
  for (uint32_t c = 0; c * size_t(per_chunk_) < count_; c++) {
    const size_t n = std::min<size_t>(per_chunk_, count_ - size_t(c) * per_chunk_);
    std::memcpy(dst + size_t(c) * per_chunk_ * words_ * 8, chunks_[c].get(), n * words_ * 8);
  }
}

void VectorPool::write_summaries(uint8_t* dst) const {
  // Little-endian, as the table.
  if (!summaries_.empty()) std::memcpy(dst, summaries_.data(), summaries_.size() * 8);
}

void VectorPool::clear() {
  chunks_.clear();
  chunks_.shrink_to_fit();
  std::vector<uint64_t>().swap(summaries_);
  count_ = 0;
}

// Over 60 lines: one sweep in one loop, kept step for step parallel to buildDim() in src/compile/build.ts (its byte-identical
// twin).
bool sweep_field(const SweepInput& in, SweepResult* out, const char** error) {
  const uint32_t n = in.rules;
  const size_t words = (size_t(n) + 63) / 64;
  if (!integral(in.top)) return *error = "top key out of range", false;
  const uint64_t top = static_cast<uint64_t>(in.top);
  std::vector<Event> events;
  events.reserve(in.intervals * 2);
  for (size_t i = 0; i < in.intervals; i++) {
    if (!integral(in.lo[i]) || !integral(in.hi[i]) || in.lo[i] > in.hi[i] || in.hi[i] > in.top)
      return *error = "interval out of range", false;
    if (in.rule[i] >= n) return *error = "rule index out of range", false;
    const uint64_t lo = static_cast<uint64_t>(in.lo[i]), hi = static_cast<uint64_t>(in.hi[i]);
    events.push_back({lo, in.rule[i], 1});
    if (hi < top) events.push_back({hi + 1, in.rule[i], -1});
  }
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) { return a.key < b.key; });

  out->vectors = VectorPool(words);
  std::vector<uint64_t> cur(words, 0);
  uint64_t hash = 0;
  uint64_t ones = 0;
  for (size_t i = 0; i < in.always_count; i++) {
    const uint32_t r = in.always[i];
    if (r >= n) return *error = "rule index out of range", false;
    if (!(cur[r >> 6] >> (r & 63) & 1)) {
      cur[r >> 6] |= uint64_t(1) << (r & 63);
      hash ^= rule_hash(r);
      ones++;
    }
  }
  std::vector<int32_t> count(n, 0);
  std::vector<uint32_t> stamp(n, 0);
  std::vector<uint8_t> start_bit(n, 0);
  std::vector<uint32_t> touched;
  // Distinct vectors: open addressing over class + 1, keyed by hash.
  std::vector<uint32_t> slots(1024, 0);
  std::vector<uint64_t> hashes;
  uint64_t ones_total = 0;
  auto place = [&](uint32_t cls) {
    size_t mask = slots.size() - 1;
    size_t i = hashes[cls] & mask;
    while (slots[i]) i = (i + 1) & mask;
    slots[i] = cls + 1;
  };
  auto snapshot = [&]() {
    ones_total += ones;
    const size_t mask = slots.size() - 1;
    for (size_t i = hash & mask; slots[i]; i = (i + 1) & mask) {
      const uint32_t c = slots[i] - 1;
      if (hashes[c] == hash && std::memcmp(out->vectors.at(c), cur.data(), words * 8) == 0) {
        out->classes.push_back(c);
        return;
      }
    }
    const uint32_t c = static_cast<uint32_t>(hashes.size());
    out->vectors.append(cur.data());
    hashes.push_back(hash);
    out->classes.push_back(c);
    if (hashes.size() * 2 > slots.size()) {
      slots.assign(slots.size() * 2, 0);
      for (uint32_t k = 0; k < hashes.size(); k++) place(k);
    } else {
      place(c);
    }
  };

  size_t k = 0;
  uint32_t group = 0;
  // The elementary interval starting at 0 takes the events at key 0.
  bool first = true;
  while (first || k < events.size()) {
    const uint64_t key = k < events.size() ? events[k].key : 0;
    if (!first || key == 0) {
      group++;
      touched.clear();
      for (; k < events.size() && events[k].key == key; k++) {
        const uint32_t r = events[k].rule;
        const bool before = count[r] > 0;
        count[r] += events[k].delta;
        if (before == (count[r] > 0)) continue;
        if (stamp[r] != group) {
          stamp[r] = group;
          start_bit[r] = before;
          touched.push_back(r);
        }
        cur[r >> 6] ^= uint64_t(1) << (r & 63);
        hash ^= rule_hash(r);
        if (before)
          ones--;
        else
          ones++;
      }
    }
    if (first) {
      first = false;
      snapshot();
      continue;
    }
    // Merge with the previous interval when no bit changed (a rule leaving
    // and another entering, or one rule's +1 and -1, at the same key).
    bool changed = false;
    for (uint32_t r : touched) {
      if ((count[r] > 0) != static_cast<bool>(start_bit[r])) {
        changed = true;
        break;
      }
    }
    if (!changed) continue;
    out->boundaries.push_back(static_cast<double>(key));
    snapshot();
  }
  out->density = static_cast<double>(ones_total) / static_cast<double>(out->classes.size());
  return true;
}

}  // namespace nfsieve
