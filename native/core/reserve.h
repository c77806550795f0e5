// Memory for the large regions a build writes once: the table the loader
// copies, the vectors the compiler writes into it, and the vectors the index
// builders fill (index.cc, splits.cc).
//
// Growth without moves. A builder that appends until a budget runs out
// reserves up to that budget first: the reservation is address space, and a
// page is touched only when an element lands on it, so the vector is never
// moved (each doubling copied everything so far onto fresh pages, up to a
// third of a load). When the vector ends up less than half full it is
// trimmed, as doubling would have left it.
//
// Faults in bulk. Where huge pages do not apply, a page's first write is a
// fault, and on this project's VM a fault costs microseconds: acl4_1k's load
// took about 1,400 of them, a fifth of its 21 ms. A region about to be written
// whole (a stage's map, a trimmed copy) has its page tables filled first in
// one call, MADV_POPULATE_WRITE (Linux 5.14); a vector appended to within its
// reservation, a step ahead of its end (Populated). Where the kernel lacks the
// advice, the writes fault as before.
//
// Huge pages. A region of 8 MiB or more about to be written gets
// madvise(MADV_HUGEPAGE): one fault per 2 MiB instead of one per 4 KiB.
// Where transparent huge pages are "madvise" (as on this project's VM,
// where a 4 KiB fault costs about 10 us: 169 MiB first written in 460 ms,
// 23 ms with the advice) this is what makes them apply; elsewhere it changes
// nothing. Smaller regions are left alone (a partly used last huge page
// would be a large share of them).
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace nfsieve {

constexpr size_t kReserveMax = size_t(256) << 20;  // bytes reserved up front, at most
constexpr size_t kHugeMin = size_t(8) << 20;       // regions advised to use huge pages, at least

// madvise(advice) over the whole pages of [p, p + bytes) (advice: a failure changes nothing).
inline void advise_pages(void* p, size_t bytes, int advice) {
  const uintptr_t page = 4096;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, advice);
}

// Huge pages behind [p, p + bytes) when it is at least kHugeMin.
inline void advise_huge_pages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  if (bytes >= kHugeMin) advise_pages(p, bytes, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

// Page tables for the whole pages of [p, p + bytes), which is about to be written.
inline void populate(void* p, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  advise_pages(p, bytes, MADV_POPULATE_WRITE);
#else
  (void)p;
  (void)bytes;
#endif
}

// v holding n copies of x, on pages populated before they are written.
template <typename T>
void assign_populated(std::vector<T>* v, size_t n, const T& x) {
  if (n > v->capacity()) {
    std::vector<T>().swap(*v);
    v->reserve(n);
    populate(v->data(), n * sizeof(T));
  }
  v->assign(n, x);
}

// A vector appended to within its reservation, populated at most kStep bytes
// ahead of its end (so at most that much is resident and unused).
class Populated {
 public:
  static constexpr size_t kStep = size_t(256) << 10;
  // Before n more elements are appended to v.
  template <typename T>
  void ahead(const std::vector<T>& v, size_t n) {
    const size_t need = (v.size() + n) * sizeof(T);
    if (need <= done_) return;
    const size_t to = std::min(v.capacity() * sizeof(T), std::max(need, done_ + kStep));
    if (to <= done_) return;  // past the reservation: the vector moves and faults as it would have
    populate(reinterpret_cast<char*>(const_cast<T*>(v.data())) + done_, to - done_);
    done_ = to;
  }

 private:
  size_t done_ = 0;
};

// Room for `bytes` of elements beyond v's size (at most kReserveMax), in
// huge pages when large; none when there is no such address space (v then
// grows as it would have).
template <typename T>
void reserve_budget(std::vector<T>* v, size_t bytes) {
  try {
    v->reserve(v->size() + std::min(bytes, kReserveMax) / sizeof(T));
  } catch (const std::bad_alloc&) { return; }
  advise_huge_pages(v->data() + v->size(), (v->capacity() - v->size()) * sizeof(T));
}

// Gives back the reservation when less than half of it was used (a copy onto populated pages).
template <typename T>
void trim_reserve(std::vector<T>* v) {
  if (v->capacity() <= 2 * v->size()) return;
  std::vector<T> t;
  t.reserve(v->size());
  populate(t.data(), v->size() * sizeof(T));
  t.assign(v->begin(), v->end());
  v->swap(t);
}

}  // namespace nfsieve
