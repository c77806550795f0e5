// A plain first-match linear scan over IPv4 5-tuple rules (ClassBench): the
// baseline the decision table is measured against, and the independent
// oracle of the benchmark's correctness gate.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nfsieve {

// One rule: inclusive ranges per field; proto_mask 0 means any protocol.
struct TupleRule {
  uint32_t src_lo, src_hi, dst_lo, dst_hi;
  uint16_t sport_lo, sport_hi, dport_lo, dport_hi;
  uint8_t proto, proto_mask;
  uint8_t pad[2];
};
static_assert(sizeof(TupleRule) == 28, "TupleRule is 7 words");

// Index of the first rule containing the tuple, or -1.
int32_t linear_first_match(const TupleRule* rules, size_t count, uint32_t src, uint32_t dst, uint32_t sport, uint32_t dport,
                           uint32_t proto);

}  // namespace nfsieve
