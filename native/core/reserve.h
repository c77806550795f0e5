// Growth without moves for the vectors the index builders fill (index.cc,
// splits.cc). A builder that appends until a budget runs out reserves up to
// that budget first: the reservation is address space, and a page is
// touched only when an element lands on it, so the vector is never moved
// (each doubling copied everything so far onto fresh pages, which were up
// to a third of a load on a VM where page faults are dear). When the vector
// ends up less than half full it is trimmed, as doubling would have left it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <new>
#include <vector>

namespace nfsieve {

constexpr size_t kReserveMax = size_t(256) << 20;  // bytes reserved up front, at most

// Room for `bytes` of elements beyond v's size (at most kReserveMax); none
// when there is no such address space (v then grows as it would have).
template <typename T>
void reserve_budget(std::vector<T>* v, size_t bytes) {
  try {
    v->reserve(v->size() + std::min(bytes, kReserveMax) / sizeof(T));
  } catch (const std::bad_alloc&) {}
}

// Gives back the reservation when less than half of it was used.
template <typename T>
void trim_reserve(std::vector<T>* v) {
  if (v->capacity() > 2 * v->size()) v->shrink_to_fit();
}

}  // namespace nfsieve
