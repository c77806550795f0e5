#include "linear.h"

namespace nfsieve {

int32_t linear_first_match(const TupleRule* rules, size_t count, uint32_t src, uint32_t dst, uint32_t sport, uint32_t dport,
                           uint32_t proto) {
  for (size_t i = 0; i < count; i++) {
    const TupleRule& r = rules[i];
    if (src >= r.src_lo && src <= r.src_hi && dst >= r.dst_lo && dst <= r.dst_hi && sport >= r.sport_lo && sport <= r.sport_hi &&
        dport >= r.dport_lo && dport <= r.dport_hi && ((proto ^ r.proto) & r.proto_mask) == 0)
      return static_cast<int32_t>(i);
  }
  return -1;
}

}  // namespace nfsieve
