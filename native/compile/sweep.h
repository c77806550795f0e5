// The compiler's sweep for one narrow field (keys below 2^53), in C++: the
// same result as buildDim() in src/compile/build.ts, byte for byte (tested),
// which stays the reference and handles 128-bit keys.
//
// Every rule accepts a few intervals [lo, hi] of the field's keys, or all of
// them. Sweeping the interval ends in key order cuts the domain into
// elementary intervals; each gets the bit-vector of the rules accepting it.
// Equal vectors are stored once, numbered in order of first appearance.
#pragma once

#include <cstddef>
#include <cstdint>
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

struct SweepResult {
  std::vector<double> boundaries;  // starts of elementary intervals 1..B
  std::vector<uint32_t> classes;   // vector of each elementary interval (B + 1)
  std::vector<uint64_t> vectors;   // distinct vectors, ceil(rules / 64) words each
  uint32_t vector_count = 0;
  double density = 0;  // mean rules per elementary interval
};

// False (and *error set) when an input is out of range.
bool sweep_field(const SweepInput& in, SweepResult* out, const char** error);

}  // namespace nfsieve
