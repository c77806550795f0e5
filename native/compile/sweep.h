// The compiler's sweep for one narrow field (keys below 2^53), in C++: the
// same result as buildDim() in src/compile/build.ts, byte for byte (tested),
// which stays the reference and handles 128-bit keys.
//
// Every rule accepts a few intervals [lo, hi] of the field's keys, or all of
// them. Sweeping the interval ends in key order cuts the domain into
// elementary intervals; each gets the bit-vector of the rules accepting it.
// Equal vectors are stored once, numbered in order of first appearance.
// They stay in native memory (VectorPool) until the table writer copies them
// out with their summaries (the addon's sweepFieldHeld/writeHeldVectors), so
// the bulk of a large table is allocated once, in the table itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace nfsieve {

struct SweepInput {
  const double* lo;  // interval i: keys lo[i]..hi[i] accepted by rule[i]
  const double* hi;
  const uint32_t* rule;
  size_t intervals;
  const uint32_t* always;  // rules with no condition on the field
  size_t always_count;
  uint32_t rules;  // rule count (vector width)
  double top;      // the largest key of the domain
};

// Distinct vectors of `words` 64-bit words each, in chunks of about 1 MiB:
// appending never moves what is stored (no reallocation copies of tables that
// reach a hundred MiB), and the table writer copies them out once.
class VectorPool {
 public:
  explicit VectorPool(size_t words = 0);
  size_t words() const { return words_; }
  uint32_t count() const { return count_; }
  const uint64_t* at(uint32_t i) const { return chunks_[i / per_chunk_].get() + size_t(i % per_chunk_) * words_; }
  void append(const uint64_t* v);
  // The vectors back to back (count * words words), then each vector's
  // summary (bit b of word s: 64-word block 64 s + b has a bit set; ceil(words / 64) words each), as the table stores them.
  void copy_vectors(uint8_t* dst) const;
  void write_summaries(uint8_t* dst) const;
  void clear();

 private:
  size_t words_;
  uint32_t per_chunk_;
  uint32_t count_ = 0;
  std::vector<std::unique_ptr<uint64_t[]>> chunks_;
  std::vector<uint64_t> summaries_;  // ceil(words / 64) per vector, made as it is appended
};

struct SweepResult {
  std::vector<double> boundaries;  // starts of elementary intervals 1..B
  std::vector<uint32_t> classes;   // vector of each elementary interval (B + 1)
  VectorPool vectors;              // distinct vectors, numbered in order of first appearance
  double density = 0;              // mean rules per elementary interval
  bool written = false;            // the vectors went into a table and were freed (the addon's held sweeps)
};

// False (and *error set) when an input is out of range.
bool sweep_field(const SweepInput& in, SweepResult* out, const char** error);

}  // namespace nfsieve
