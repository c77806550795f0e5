// Building cut trees (see cuts.h): rule boxes read off the table's vectors,
// rules grouped by which address fields are small, one HiCuts tree per group;
// and the leaf scan, in AVX2 and scalar forms.
#include "cuts.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "compact.h"
#include "index.h"

namespace nfsieve {
namespace {

constexpr uint32_t kLeafRules = 8;                   // a node with this many rules or fewer is a leaf
constexpr uint32_t kSpace = 4;                       // copies of rules a cut may make, per rule of the node
constexpr uint32_t kMaxCutBits = 12;                 // at most 4096 slices per node
constexpr uint32_t kSmallShift = 16;                 // a side is small at most domain / 2^16 wide
constexpr uint32_t kGroupMinRules = 1;               // every group, however small, gets its tree
constexpr uint64_t kSplitWork = uint64_t(1) << 26;   // rule ends sorted while choosing splits (~0.5 s)
constexpr uint64_t kShortWork = 2;                   // work of the cut-short equal cuts, in equal-cut budgets
constexpr size_t kOneTreeNum = 9, kOneTreeDen = 10;  // one split tree when a group holds 9/10 of the rules
constexpr size_t kOneTreeRules = 8192;               // or when at most this many rules can be first
constexpr size_t kSampleRules = 16384;               // or, up to this many, when a sample's split tree is small:
constexpr size_t kSampleStep = 4;                    // every 4th rule that can be first
constexpr size_t kSampleLines = 176;                 // at most 2.75 lines per sampled rule (in 64ths)
constexpr size_t kSplitGroupRules = 256;             // groups this large may get a split tree (group_tree())

// Where a rule's bit is set in one field: the hull of its intervals and
// whether they are one run.
struct Span {
  uint32_t lo = 0, hi = 0;
  uint8_t runs = 0;  // 0 never, 1 one run, 2 several
};

// Spans of every rule in one field: the vector at interval 0, then the bits
// that flip at each boundary where the class changes.
void spans_of(const Family& f, const Dim& dim, uint32_t rules, std::vector<Span>* out) {
  out->assign(rules, Span());
  const uint32_t W = f.words, S = f.summary_words, I = dim.boundary_count;
  std::vector<uint8_t> on(rules, 0);
  const uint64_t* v0 = dim.vectors + size_t(dim.classes[0]) * W;
  for (uint32_t w = 0; w < W; w++)
    for (uint64_t x = v0[w]; x; x &= x - 1) {
      const uint32_t r = w * 64 + __builtin_ctzll(x);
      if (r < rules) (*out)[r] = Span{0, 0, 1}, on[r] = 1;
    }
  for (uint32_t i = 1; i <= I; i++) {
    const uint32_t ca = dim.classes[i - 1], cb = dim.classes[i];
    if (ca == cb) continue;
    const uint64_t *a = dim.vectors + size_t(ca) * W, *b = dim.vectors + size_t(cb) * W;
    const uint64_t *sa = dim.summaries + size_t(ca) * S, *sb = dim.summaries + size_t(cb) * S;
    for (uint32_t sw = 0; sw < S; sw++)
      for (uint64_t blocks = sa[sw] | sb[sw]; blocks; blocks &= blocks - 1) {
        const uint32_t w = sw * 64 + __builtin_ctzll(blocks);
        for (uint64_t x = a[w] ^ b[w]; x; x &= x - 1) {
          const uint32_t r = w * 64 + __builtin_ctzll(x);
          if (r >= rules) continue;
          Span& s = (*out)[r];
          if (on[r]) {  // the run ends at interval i - 1
            s.hi = i - 1;
            on[r] = 0;
          } else {
            if (s.runs == 0) s.lo = i;
            s.runs = s.runs ? 2 : 1;
            on[r] = 1;
          }
        }
      }
  }
  for (uint32_t r = 0; r < rules; r++)
    if (on[r]) (*out)[r].hi = I;
}

}  // namespace

class CutsBuilder {
 public:
  // `abandon`: once a budget runs out the trees will not be used, so stop.
  CutsBuilder(FamilyCuts* c, const std::vector<CutsRule>& rules, size_t budget, bool abandon, uint64_t work_limit)
      : c_(c), rules_(rules), budget_(budget), abandon_(abandon), work_limit_(work_limit) {}

  // One tree over rules `set` (ascending rule order); returns its root word.
  uint64_t tree(const std::vector<uint32_t>& set, const uint32_t* width_bits) {
    uint32_t lo[kCutDims] = {0};
    uint32_t wb[kCutDims];
    std::memcpy(wb, width_bits, sizeof(wb));
    return node(set, lo, wb);
  }

  // Every rule's box (and re-check flag) from the family's vectors; `alive`:
  // in the base vector and matching some key of every field.
  static void read_boxes(FamilyCuts* c, const Family& f, uint32_t rules, std::vector<CutsRule>* out, std::vector<uint8_t>* live) {
    std::vector<CutsRule>& br = *out;
    std::vector<uint8_t>& alive = *live;
    br.resize(rules);
    alive.assign(rules, 0);
    std::vector<Span> spans;
    for (uint32_t r = 0; r < rules; r++) {
      alive[r] = (f.base[r >> 6] >> (r & 63)) & 1;
      br[r].id = r;
      for (int i = 0; i < kCutDims; i++) br[r].box.lo[i] = 0, br[r].box.hi[i] = 0xffffffffu;
    }
    // Box fields: narrow fields whose boundaries fit 32 bits, at most kCutDims.
    for (int i = 0; i < f.dim_count; i++) {
      const Dim& dim = f.dims[i];
      const uint32_t I = dim.boundary_count;
      const bool boxed = !dim.wide && c->dims() < kCutDims && (I == 0 || dim.boundaries[I - 1] <= 0xffffffffu);
      spans_of(f, dim, rules, &spans);
      const uint32_t clamp = boxed && I ? static_cast<uint32_t>(dim.boundaries[I - 1]) : 0;
      for (uint32_t r = 0; r < rules; r++) {
        const Span& s = spans[r];
        if (s.runs == 0) {
          alive[r] = 0;
          continue;
        }
        if (!boxed) {
          if (!(s.runs == 1 && s.lo == 0 && s.hi == I)) br[r].id |= FamilyCuts::kVerify;
          continue;
        }
        if (s.runs > 1) br[r].id |= FamilyCuts::kVerify;
        const int b = c->dims();
        br[r].box.lo[b] = s.lo == 0 ? 0 : static_cast<uint32_t>(dim.boundaries[s.lo - 1]);
        br[r].box.hi[b] = s.hi == I ? clamp : static_cast<uint32_t>(dim.boundaries[s.hi] - 1);
      }
      if (boxed) {
        c->dims_.push_back(i);
        c->clamp_.push_back(clamp);
        c->domain_.push_back(model_domain(dim));
      }
    }
  }

 private:
  FamilyCuts* c_;
  const std::vector<CutsRule>& rules_;
  size_t budget_;
  bool abandon_;
  uint64_t work_limit_;
  uint64_t work_ = 0;

  size_t used() const { return c_->nodes_.size() * 8 + c_->ids_.size() * 4; }

  uint64_t leaf(const std::vector<uint32_t>& set) {
    const uint32_t from = static_cast<uint32_t>(c_->ids_.size());
    for (uint32_t i : set) c_->ids_.push_back(rules_[i].id);
    return FamilyCuts::kLeaf | uint64_t(set.size()) << 32 | from;
  }

  // Slices of rule i on field d, in a box [lo, lo + 2^wb) cut into 2^b.
  static void slices(const RuleBox& box, int d, uint32_t lo, uint32_t wb, uint32_t b, uint32_t* s0, uint32_t* s1) {
    const uint64_t top = uint64_t(lo) + (uint64_t(1) << wb) - 1;
    const uint64_t a = std::max<uint64_t>(box.lo[d], lo), z = std::min<uint64_t>(box.hi[d], top);
    const uint32_t shift = wb - b;
    *s0 = static_cast<uint32_t>((a - lo) >> shift);
    *s1 = static_cast<uint32_t>((z - lo) >> shift);
  }

  struct Cut {
    int d = -1;
    uint32_t b = 0;
    uint64_t largest = 0, total = 0;
  };

  std::vector<int32_t> counts_;  // try_field's slice counts, kept to save an allocation per call

  // The best cut count for field d: the most slices whose copies stay within
  // kSpace x n, judged by the largest child. The cut counts are tried in
  // order and the first over the space bound ends the search (work_ grows
  // trial by trial). One pass over the rules counts where each starts and
  // ends at the finest count the search can reach; a coarser slice's counts
  // are sums of finer ones, so every count is judged without reading a box
  // again.
  Cut try_field(const std::vector<uint32_t>& set, int d, uint32_t lo, uint32_t wb) {
    static constexpr uint32_t kTrials[] = {1, 2, 4, 6, 8, 12};  // cut counts tried: 2^b slices
    constexpr int kTrialCount = sizeof(kTrials) / sizeof(kTrials[0]);
    const uint64_t n = set.size();
    // Every rule takes at least one slice (copies >= n): a count with n + 2^b
    // over kSpace x n is refused whatever the rules, after its work is counted.
    int reach = 0;
    bool refused = false;
    size_t at[kTrialCount + 1] = {0};  // trial t's starts at at[t], its ends 2^b after
    for (int t = 0; t < kTrialCount; t++) {
      const uint32_t b = kTrials[t];
      if (b > std::min(wb, kMaxCutBits)) break;
      if (b > 1 && n + (uint64_t(1) << b) > kSpace * n) {
        refused = true;
        break;
      }
      at[t + 1] = at[t] + (size_t(2) << b);
      reach++;
    }
    Cut best;
    if (reach > 0) {
      count_ends(set, d, lo, wb, kTrials, reach, at);
      for (int t = 0; t < reach; t++) {
        const uint32_t b = kTrials[t], np = 1u << b;
        const int32_t *starts = &counts_[at[t]], *ends = starts + np;
        work_ += n;
        uint64_t total = n;
        for (uint32_t x = 0; x < np; x++) total += uint64_t(x) * uint64_t(ends[x]) - uint64_t(x) * uint64_t(starts[x]);
        if (b > 1 && total + np > kSpace * n) return best;
        int64_t open = 0, largest = 0;  // rules starting at or before slice x, less those ending before it
        for (uint32_t x = 0; x < np; x++) {
          open += starts[x];
          largest = std::max(largest, open);
          open -= ends[x];
        }
        if (best.d < 0 || uint64_t(largest) < best.largest) best = Cut{d, b, uint64_t(largest), total};
      }
    }
    if (refused) work_ += n;
    return best;
  }

  // For trials 0..reach-1 of try_field: how many rules of `set` start, and
  // how many end, in each slice of field d (trial t's at counts_[at[t]]).
  void count_ends(const std::vector<uint32_t>& set, int d, uint32_t lo, uint32_t wb, const uint32_t* trials, int reach,
                  const size_t* at) {
    const int f = reach - 1;
    const uint32_t shift = wb - trials[f], fine = 1u << trials[f];
    counts_.resize(at[reach]);  // the coarser counts are written whole below: only the finest start at zero
    int32_t *starts = &counts_[at[f]], *ends = starts + fine;
    std::fill(starts, starts + 2 * size_t(fine), 0);
    const uint64_t top = uint64_t(lo) + (uint64_t(1) << wb) - 1;
    for (uint32_t i : set) {
      const RuleBox& box = rules_[i].box;
      starts[(std::max<uint64_t>(box.lo[d], lo) - lo) >> shift]++;
      ends[(std::min<uint64_t>(box.hi[d], top) - lo) >> shift]++;
    }
    for (int t = f - 1; t >= 0; t--) {
      const uint32_t k = trials[t + 1] - trials[t], np = 1u << trials[t], finer = np << k;
      int32_t *s = &counts_[at[t]], *e = s + np;
      const int32_t *fs = &counts_[at[t + 1]], *fe = fs + finer;
      for (uint32_t x = 0, y = 0; x < np; x++) {  // sums in registers: no chain of stores to one counter
        int32_t sx = 0, ex = 0;
        for (const uint32_t stop = y + (1u << k); y < stop; y++) sx += fs[y], ex += fe[y];
        s[x] = sx;
        e[x] = ex;
      }
    }
  }

  // Rules after one that covers the whole node box (and needs no re-check)
  // can never be the first match here: drop them.
  uint64_t node(std::vector<uint32_t> set, const uint32_t* lo, const uint32_t* wb) {
    for (size_t j = 0; j < set.size(); j++) {
      const CutsRule& r = rules_[set[j]];
      bool covers = !(r.id & FamilyCuts::kVerify);
      for (int d = 0; d < c_->dims() && covers; d++)
        covers = r.box.lo[d] <= lo[d] && uint64_t(r.box.hi[d]) >= uint64_t(lo[d]) + (uint64_t(1) << wb[d]) - 1;
      if (covers) {
        set.resize(j + 1);
        break;
      }
    }
    if (set.size() <= kLeafRules) return leaf(set);
    if (used() > budget_ || work_ > work_limit_) c_->cut_short_ = true;
    if (c_->cut_short_) return abandon_ ? FamilyCuts::kLeaf : leaf(set);
    Cut best;
    for (int d = 0; d < c_->dims(); d++) {
      if (wb[d] == 0) continue;
      Cut c = try_field(set, d, lo[d], wb[d]);
      if (c.d >= 0 && (best.d < 0 || c.largest < best.largest || (c.largest == best.largest && c.total < best.total))) best = c;
    }
    if (best.d < 0 || best.largest >= set.size()) return leaf(set);  // no cut separates them
    const int d = best.d;
    const uint32_t np = 1u << best.b, shift = wb[d] - best.b;
    std::vector<std::vector<uint32_t>> child(np);
    {
      // Each child's size first (the rules overlapping its slice), so that each list is allocated once.
      std::vector<uint32_t> span(2 * set.size());
      std::vector<int64_t> opens(np + 1, 0);
      for (size_t j = 0; j < set.size(); j++) {
        slices(rules_[set[j]].box, d, lo[d], wb[d], best.b, &span[2 * j], &span[2 * j + 1]);
        opens[span[2 * j]]++;
        opens[span[2 * j + 1] + 1]--;
      }
      int64_t open = 0;
      for (uint32_t s = 0; s < np; s++) child[s].reserve(static_cast<size_t>(open += opens[s]));
      for (size_t j = 0; j < set.size(); j++)
        for (uint32_t s = span[2 * j]; s <= span[2 * j + 1]; s++) child[s].push_back(set[j]);
    }
    const uint32_t base = static_cast<uint32_t>(c_->nodes_.size());
    c_->nodes_.resize(base + np);
    uint32_t clo[kCutDims], cwb[kCutDims];
    std::memcpy(clo, lo, sizeof(clo));
    std::memcpy(cwb, wb, sizeof(cwb));
    cwb[d] = shift;
    bool same = false;  // child[s] holds the rules of child[s - 1]
    for (uint32_t s = 0; s < np; s++) {
      const bool next_same = s + 1 < np && child[s + 1] == child[s];  // compared before child[s] moves
      uint64_t word;
      if (same) {
        word = c_->nodes_[base + s - 1];  // same rules: same subtree
      } else {
        clo[d] = lo[d] + (s << shift);
        word = node(std::move(child[s]), clo, cwb);
      }
      c_->nodes_[base + s] = word;
      std::vector<uint32_t>().swap(child[s]);
      same = next_same;
    }
    return uint64_t(base) | uint64_t(d) << 32 | uint64_t(shift) << 40 | uint64_t(np - 1) << 48;
  }
};

namespace {

// NFSIEVE_SIMD=scalar turns the SIMD paths off, =avx2 keeps them at AVX2.
bool simd_env_is(const char* v) {
  const char* s = std::getenv("NFSIEVE_SIMD");
  return s && std::strcmp(s, v) == 0;
}

__attribute__((target("avx2"))) inline uint32_t scan_avx2(const ScanBox* boxes, const uint32_t* ids, const uint32_t* key,
                                                          uint32_t count, uint32_t below) {
  const __m256i k = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(key));
  const __m256i kb = _mm256_xor_si256(k, _mm256_set1_epi32(static_cast<int>(ScanBox::kBelow)));
  const __m256i ka = _mm256_xor_si256(k, _mm256_set1_epi32(static_cast<int>(ScanBox::kAbove)));
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t r = ids[i] & ~FamilyCuts::kVerify;
    if (r >= below) return count;
    if (!scan_box_misses(boxes[r], kb, ka)) return i;
  }
  return count;
}

// As scan_avx2(), for a run of leaf entries in ids_, 4 boxes a step
// (hits4()): it may read up to 3 entries past the run, the next leaf's or
// the 3 empty-box entries that end ids_, and ignores them. Against one box
// a step (whose exit mispredicts about once a lane on uniform traces):
// fw2_10k uniform 38.1 -> 32.2 ns, ipc2_10k 33.3 -> 27.1, ClassBench-style
// fw1_10k 17.6 -> 20.6 (docs/algorithm.md, "Leaf lines scanned whole").
__attribute__((target("avx2"))) inline uint32_t scan4_avx2(const ScanBox* boxes, const uint32_t* ids, const uint32_t* key,
                                                           uint32_t count, uint32_t below) {
  const __m256i k = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(key));
  const __m256i kb = _mm256_xor_si256(k, _mm256_set1_epi32(static_cast<int>(ScanBox::kBelow)));
  const __m256i ka = _mm256_xor_si256(k, _mm256_set1_epi32(static_cast<int>(ScanBox::kAbove)));
  for (uint32_t j = 0; j < count; j += 4) {
    if ((ids[j] & ~FamilyCuts::kVerify) >= below) return count;
    const uint32_t rest = count - j < 4 ? count - j : 4;
    const uint64_t hit = hits4(boxes, ids + j, kb, ka) & ((uint64_t(1) << 4 * rest) - 1);
    if (hit) {
      const uint32_t i = j + static_cast<uint32_t>(__builtin_ctzll(hit)) / 4;
      return (ids[i] & ~FamilyCuts::kVerify) < below ? i : count;
    }
  }
  return count;
}

uint32_t scan_scalar(const ScanBox* boxes, const uint32_t* ids, const uint32_t* key, uint32_t count, uint32_t below, int dims) {
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t r = ids[i] & ~FamilyCuts::kVerify;
    if (r >= below) return count;
    if (boxes[r].holds(key, dims)) return i;
  }
  return count;
}

// Bits to hold keys 0..clamp: the root box of a field.
uint32_t width_bits(uint32_t clamp) {
  uint32_t b = 0;
  while (b < 32 && (uint64_t(1) << b) <= clamp) b++;
  return b;
}

}  // namespace

bool cuts_avx2_available() { return __builtin_cpu_supports("avx2") && !simd_env_is("scalar"); }

bool cuts_avx512_available() {
  return cuts_avx2_available() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && !simd_env_is("avx2");
}

uint32_t FamilyCuts::scan(const uint32_t* key, const uint32_t* ids, uint32_t count, uint32_t below) const {
  if (avx2_) return scan_avx2(boxes_.data(), ids, key, count, below);
  return scan_scalar(boxes_.data(), ids, key, count, below, dims());
}

namespace {

__attribute__((target("avx2"))) void scan_lanes_avx2(const ScanBox* boxes, const uint32_t (*keys)[kCutDims], const int* live,
                                                     int nl, const uint32_t* const* ids, const uint32_t* count,
                                                     const uint32_t* out, uint32_t* pos) {
  for (int i = 0; i < nl; i++) pos[i] = scan4_avx2(boxes, ids[i], keys[live[i]], count[i], out[live[i]]);
}

}  // namespace

void FamilyCuts::scan_lanes(const uint32_t (*keys)[kCutDims], const int* live, int nl, const uint32_t* const* ids,
                            const uint32_t* count, const uint32_t* out, uint32_t* pos) const {
  if (avx2_) return scan_lanes_avx2(boxes_.data(), keys, live, nl, ids, count, out, pos);
  for (int i = 0; i < nl; i++) pos[i] = scan_scalar(boxes_.data(), ids[i], keys[live[i]], count[i], out[live[i]], dims());
}

size_t FamilyCuts::byte_size() const {
  size_t bytes = nodes_.size() * 8 + lines_.size() * sizeof(SplitLine) + boxes_.size() * sizeof(ScanBox) + ids_.size() * 4 +
                 filters_.size() * 8 + trees_.size() * sizeof(Tree);
  for (const auto& c : compacts_) bytes += c->byte_size();
  return bytes;
}

namespace {

// The two widest box fields (the addresses, in a 5-tuple table), by key
// width; -1 where fewer than two fields are wider than kSmallShift bits.
void address_fields(const uint32_t* wb, int dims, int* wide1, int* wide2) {
  *wide1 = *wide2 = -1;
  for (int i = 0; i < dims; i++) {
    if (wb[i] <= kSmallShift) continue;
    if (*wide1 < 0 || wb[i] > wb[*wide1])
      *wide2 = *wide1, *wide1 = i;
    else if (*wide2 < 0 || wb[i] > wb[*wide2])
      *wide2 = i;
  }
}

// Rules by which of the two widest fields (the addresses) are small: group
// (small in the widest ? 2 : 0) | (small in the second ? 1 : 0).
void group_rules(const std::vector<CutsRule>& br, const std::vector<uint8_t>& alive, const std::vector<uint32_t>& wb, int dims,
                 std::vector<uint32_t>* groups) {
  int wide1, wide2;
  address_fields(wb.data(), dims, &wide1, &wide2);
  auto small = [&](const RuleBox& b, int d) {
    return d >= 0 && (uint64_t(b.hi[d]) - b.lo[d]) < (uint64_t(1) << (wb[d] - kSmallShift));
  };
  for (uint32_t r = 0; r < br.size(); r++)
    if (alive[r]) groups[(small(br[r].box, wide1) ? 2 : 0) | (small(br[r].box, wide2) ? 1 : 0)].push_back(r);
}

}  // namespace

void FamilyCuts::build(const Table& table, const Family& f, const CutsLimits& limits) {
  const uint32_t rules = table.rule_count();
  if (!limits.enabled || rules == 0) return;
  avx2_ = limits.simd && cuts_avx2_available();
  avx512_ = avx2_ && limits.avx512 && cuts_avx512_available();
  group_index_ = limits.group_index;
  address_filters_ = limits.address_filters;
  std::vector<CutsRule> br;
  std::vector<uint8_t> alive;
  CutsBuilder::read_boxes(this, f, rules, &br, &alive);
  covered_ = drop_covered(br, dims(), &alive);
  std::vector<uint32_t> wb(kCutDims, 0);
  for (int i = 0; i < dims(); i++) wb[i] = width_bits(clamp_[i]);
  for (int i = 0; i < kMaxDims; i++) box_of_[i] = -1;
  for (int b = 0; b < dims(); b++) box_of_[dims_[b]] = b;
  std::vector<uint32_t> groups[4], all;
  group_rules(br, alive, wb, dims(), groups);
  for (uint32_t r = 0; r < rules; r++)
    if (alive[r]) all.push_back(r);
  if (all.size() <= kCompactRules) first_rules_ = all;
  boxes_.resize(size_t(rules) + 1);
  for (uint32_t r = 0; r < rules; r++) boxes_[r] = ScanBox::of(br[r].box);
  boxes_[rules] = ScanBox::empty();
  const size_t budget = limits.memory ? limits.memory : std::max<size_t>(size_t(8) << 20, table.byte_size() / 2);
  // A split tree may take as much as the table: its 64-byte lines hold what equal cuts spread over node words and leaf entries.
  const size_t split_budget = limits.memory ? limits.memory : std::max<size_t>(size_t(8) << 20, table.byte_size());
  size_t largest = 0;
  for (const std::vector<uint32_t>& g : groups) largest = std::max(largest, g.size());
  // Which trees, in order of trial: one split tree first when one address
  // group holds nearly every rule or few rules can be first (covered.cc),
  // equal cuts over the groups first otherwise; the other when the first blows a budget (unless one is forced).
  const bool keep_short = limits.memory != 0;  // a budget given: trees cut short are kept (the tests)
  const uint64_t work = limits.work ? limits.work : kCutsWork;
  const bool one = largest * kOneTreeDen >= all.size() * kOneTreeNum || all.size() <= kOneTreeRules ||
                   (limits.tree == CutsLimits::kAuto && all.size() <= kSampleRules && small_split_tree(br, all));
  // A split tree's leaf lines name boxes by 32-bit byte offsets.
  const bool splits_fit = boxes_.size() <= kLineBoxes;
  const bool splits_first = splits_fit && (limits.tree == CutsLimits::kSplits || (limits.tree == CutsLimits::kAuto && one));
  const bool order[2] = {splits_first, !splits_first};
  const int trials = limits.tree == CutsLimits::kAuto && splits_fit ? 2 : 1;
  for (int k = 0; k < trials; k++) {
    if (k > 0) clear_trees();
    splits_ = order[k];
    if (splits_) {
      // Tried second, a split tree gets half the work: the sets where equal cuts blew up rarely separate either.
      const uint64_t split_work = (limits.work ? limits.work : kSplitWork) / (k == 0 ? 1 : 2);
      trees_.push_back(
          Tree{split_tree(this, br, all, split_budget, !keep_short, split_work, true), all.empty() ? rules : all.front()});
      trees_.back().split = true;
    } else {
      // Auto: a group's tree may be a split tree where the hit model prices it lower.
      const uint64_t split_work = limits.tree == CutsLimits::kAuto && splits_fit ? (limits.work ? limits.work : kSplitWork) : 0;
      build_cuts(f, br, groups, wb.data(), budget, !keep_short, work, split_work);
    }
    if (!cut_short_ || keep_short) break;
  }
  // Both kinds blew their budgets: equal cuts cut short against the vector
  // index, as the last resort with twice the work and the split trees' memory.
  const bool weighed = cut_short_ && !keep_short && limits.tree == CutsLimits::kAuto && limits.fallback;
  const bool kept = weighed && weigh_cut_short(f, *limits.fallback, br, groups, all, wb.data(), split_budget, kShortWork * work);
  std::sort(trees_.begin(), trees_.end(), [](const Tree& a, const Tree& b) { return a.min_rule < b.min_rule; });
  // Trees stopped by a budget hold long leaves; unless asked to (a budget
  // given) or priced lower, the family keeps the vector index instead.
  usable_ = weighed ? kept : !cut_short_ || keep_short;
  ids_.insert(ids_.end(), 3, empty_box());  // what scan4_avx2() may read past the last leaf
  if (!usable_) {
    clear_trees();
    std::vector<ScanBox>().swap(boxes_);
  }
}

double FamilyCuts::share(int i, uint32_t a, uint32_t z) const { return model_share(domain_[i], clamp_[i], a, z); }

// Whether one split tree over every kSampleStep-th rule of `all` stays
// within kSampleLines / 64 lines per rule. Rules that separate without being
// copied into many children make a small tree, and a quarter of them
// predicts the whole at a tenth of its build (the trial stops at the bound).
// In ClassBench's 10k sets (lines per sampled rule): acl3 and acl4 2.3-2.5,
// where the full tree (6.3-6.5 MiB of index, about 100 ms of load) takes
// 45 % less time per packet than equal cuts; ipc1 3.1 (its full tree
// outgrows the budget); acl2, ipc2 and fw1-5 6-30.
bool FamilyCuts::small_split_tree(const std::vector<CutsRule>& br, const std::vector<uint32_t>& all) {
  std::vector<uint32_t> sample;
  for (size_t i = 0; i < all.size(); i += kSampleStep) sample.push_back(all[i]);
  splits_ = true;
  split_tree(this, br, sample, sample.size() * kSampleLines, true, kSplitWork, false);
  const bool small = !cut_short_;
  clear_trees();
  return small;
}

// Equal cuts cut short to the budgets (long leaves where they ran out, if they still do),
// priced by the miss and hit models (index.h) against the vector index `fx`:
// kept (true) when cheaper for headers that match nothing and no dearer for
// those that match; the trees stay built either way (build() drops them).
bool FamilyCuts::weigh_cut_short(const Family& f, const FamilyIndex& fx, const std::vector<CutsRule>& br,
                                 const std::vector<uint32_t>* groups, const std::vector<uint32_t>& all, const uint32_t* wb,
                                 size_t budget, uint64_t work) {
  fallback_cost_ = vector_miss_cost(f, fx);
  if (fallback_cost_ < 0) return false;
  clear_trees();
  build_cuts(f, br, groups, wb, budget, false, work, 0);
  std::sort(trees_.begin(), trees_.end(), [](const Tree& a, const Tree& b) { return a.min_rule < b.min_rule; });
  model_cost_ = miss_cost(f);
  hit_costs(f, fx, br, all, &hit_cost_, &fallback_hit_cost_);
  return model_cost_ >= 0 && model_cost_ < fallback_cost_ && hit_cost_ >= 0 && hit_cost_ <= fallback_hit_cost_;
}

void FamilyCuts::build_cuts(const Family& f, const std::vector<CutsRule>& br, const std::vector<uint32_t>* groups,
                            const uint32_t* wb, size_t budget, bool abandon, uint64_t work, uint64_t split_work) {
  CutsBuilder builder(this, br, budget, abandon, work);
  bool boxed = group_index_;  // and every table dimension a box field: a vector index can take the box keys
  for (int i = 0; i < f.dim_count; i++) boxed = boxed && box_of_[i] >= 0;
  for (int g = 3; g >= 0; g--) {
    if (groups[g].size() < kGroupMinRules) continue;
    // Rules wide in both addresses differ in ports and protocols, where equal
    // cuts go deep (fw1_10k: 4.8 levels and 6.5 leaf entries on random
    // headers, every header); the vector index over a few hundred of them
    // names the rule with a few loads (compact.h).
    if (g == 0 && boxed && groups[g].size() <= kCompactRules) {
      std::shared_ptr<CompactIndex> ci = std::make_shared<CompactIndex>();
      if (ci->build(f, groups[g], IndexLimits())) {
        compacts_.push_back(ci);
        trees_.push_back(Tree{0, groups[g].front(), static_cast<int>(compacts_.size()) - 1});
        continue;
      }
    }
    Tree t = group_tree(&builder, br, groups[g], wb, budget, split_work);
    int wide[2], small[2], n = 0;
    address_fields(wb, dims(), &wide[0], &wide[1]);
    if (g & 2) small[n++] = wide[0];
    if (g & 1) small[n++] = wide[1];
    if (address_filters_) add_filter(br, groups[g], wb, small, n, &t);
    trees_.push_back(t);
  }
}

// A group small in an address gets the map of the 2^16 blocks of that
// address its rules touch (a small side spans at most two), when the map
// leaves out at least half of them; of two such addresses, the one whose
// map leaves out more. A random header skips the tree at the cost of one
// load, where the root would have led it to an empty leaf or a scan.
void FamilyCuts::add_filter(const std::vector<CutsRule>& br, const std::vector<uint32_t>& group, const uint32_t* wb,
                            const int* small, int n, Tree* t) {
  constexpr uint32_t kBlocks = uint32_t(1) << kSmallShift, kWords = kBlocks / 64;
  std::vector<uint64_t> best;
  uint32_t best_marked = kBlocks / 2 + 1;
  for (int i = 0; i < n; i++) {
    const int d = small[i];
    const uint32_t shift = wb[d] - kSmallShift;
    std::vector<uint64_t> map(kWords, 0);
    uint32_t marked = 0;
    for (uint32_t r : group)
      for (uint32_t b = br[r].box.lo[d] >> shift; b <= br[r].box.hi[d] >> shift; b++) {
        marked += !((map[b >> 6] >> (b & 63)) & 1);
        map[b >> 6] |= uint64_t(1) << (b & 63);
      }
    if (marked < best_marked) {
      best_marked = marked;
      best.swap(map);
      t->filter = d;
      t->filter_shift = shift;
    }
  }
  if (t->filter < 0) return;
  t->filter_at = static_cast<uint32_t>(filters_.size());
  filters_.insert(filters_.end(), best.begin(), best.end());
}

namespace {

// Costs of the equal-cut lookup's steps under the miss model (index.h),
// counted from FamilyCuts::first() and lanes_cuts(): a key read and clamped,
// a level of the lockstep walk (one node word read), a leaf reached, and a
// leaf entry's box compared (one 64-byte line read).
constexpr double kKeyStep = 12, kWalkStep = 15, kLeafStep = 20, kEntryStep = 13;
constexpr double kFilterStep = 6;   // a tree's address-block map read (8 KiB: in the cache)
constexpr size_t kHitPoints = 512;  // rules the hit model samples

}  // namespace

double FamilyCuts::miss_cost(const Family& f) const {
  if (trees_.empty()) return -1;
  for (const Tree& t : trees_)
    if (t.split) return -1;  // split trees (one for the family, or a group's): no miss model
  uint32_t lo[kCutDims] = {0}, wb[kCutDims] = {0};
  for (int i = 0; i < dims(); i++) wb[i] = width_bits(clamp_[i]);
  double cost = dims() * kKeyStep;
  for (const Tree& t : trees_)
    cost += t.compact >= 0 ? vector_miss_cost(compacts_[t.compact]->family(), compacts_[t.compact]->index())
            : t.filter < 0 ? node_cost(f, t.root, lo, wb)
                           : kFilterStep + filter_share(f, t) * node_cost(f, t.root, lo, wb);
  return cost;
}

// The model's share of headers that a tree's address-block map admits.
double FamilyCuts::filter_share(const Family& f, const Tree& t) const {
  const int d = t.filter;
  const Dim& dim = f.dims[dims_[d]];
  const uint64_t* map = &filters_[t.filter_at];
  const uint64_t blocks = uint64_t(1) << kSmallShift, size = uint64_t(1) << t.filter_shift;
  const double total = model_share(dim, clamp_[d], 0, blocks * size - 1);
  double admitted = 0;
  for (uint64_t b = 0; b < blocks && total > 0;) {
    if (!((map[b >> 6] >> (b & 63)) & 1)) {
      b++;
      continue;
    }
    uint64_t e = b + 1;
    while (e < blocks && ((map[e >> 6] >> (e & 63)) & 1)) e++;
    admitted += model_share(dim, clamp_[d], b * size, e * size - 1);
    b = e;
  }
  return total > 0 ? admitted / total : 1;
}

// The hit model (index.h) of the equal-cut trees and of the vector index `fx`:
// the mean cost over up to kHitPoints rules, spread evenly over the rule
// list, of a header at the middle of the rule's box. Negative when a table
// field is not a box field (the vector index needs every key).
void FamilyCuts::hit_costs(const Family& f, const FamilyIndex& fx, const std::vector<CutsRule>& br,
                           const std::vector<uint32_t>& all, double* trees, double* vector) const {
  *trees = *vector = -1;
  for (int i = 0; i < f.dim_count; i++)
    if (box_of_[i] < 0) return;
  std::vector<uint32_t> sample;
  for (uint32_t r : all)
    if (!(br[r].id & kVerify)) sample.push_back(r);
  if (sample.empty()) return;
  const size_t step = (sample.size() + kHitPoints - 1) / kHitPoints;
  double t = 0, v = 0;
  size_t points = 0;
  for (size_t j = 0; j < sample.size(); j += step, points++) {
    const RuleBox& box = br[sample[j]].box;
    uint32_t key[kCutDims] = {0};
    uint64_t keys[kMaxDims];
    for (int b = 0; b < dims(); b++) key[b] = static_cast<uint32_t>((uint64_t(box.lo[b]) + box.hi[b]) / 2);
    for (int i = 0; i < f.dim_count; i++) keys[i] = key[box_of_[i]];
    t += point_cost(key);
    v += vector_hit_cost(f, fx, keys);
  }
  *trees = t / points;
  *vector = v / points;
}

// The hit model's cost of one header (clamped keys) through the equal-cut trees, as first() walks them.
double FamilyCuts::point_cost(const uint32_t* key) const {
  double cost = dims() * kKeyStep;
  uint32_t best = ~0u;
  for (const Tree& t : trees_) {
    if (t.min_rule >= best) continue;
    if (t.compact >= 0) {
      const CompactIndex& ci = *compacts_[t.compact];
      uint64_t keys[kMaxDims];
      for (int d = 0; d < ci.family().dim_count; d++) keys[d] = key[box_of_[d]];
      cost += vector_hit_cost(ci.family(), ci.index(), keys);
      best = std::min(best, compact_rule(t.compact, key));
      continue;
    }
    if (!t.admits(filters_.data(), key)) {
      cost += kFilterStep;
      continue;
    }
    cost += (t.filter < 0 ? 0 : kFilterStep) + tree_cost(t, key, &best);
  }
  return cost;
}

// One group's tree. Equal cuts first; then, for a group of at least
// kSplitGroupRules when split_work is given, a split tree over the same
// rules (CutSplit's choice, made per group): the hit model (hit_cost()) is
// run on both over the group's own rules, and the cheaper is kept, the
// other's lines or nodes and leaf entries taken back. In ClassBench's 10k
// sets ipc1's three groups and acl2's small-small group take split trees
// (docs/algorithm.md, "A split tree per group"); the fw sets keep equal cuts.
FamilyCuts::Tree FamilyCuts::group_tree(CutsBuilder* builder, const std::vector<CutsRule>& br, const std::vector<uint32_t>& group,
                                        const uint32_t* wb, size_t budget, uint64_t split_work) {
  const size_t nodes0 = nodes_.size(), ids0 = ids_.size();
  Tree t{builder->tree(group, wb), group.front()};
  if (!split_work || cut_short_ || group.size() < kSplitGroupRules) return t;
  const size_t ids1 = ids_.size(), lines0 = lines_.size();
  // No wide leaves (splits.cc): the groups' random headers gained nothing
  // (ipc1_10k 18.4 -> 18.4 ns, acl2_10k 16.4 -> 17.5) and every trial, kept
  // or not, paid for them (fw1_10k's load 60.7 -> 70.4 ms).
  Tree s{split_tree(this, br, group, budget, true, split_work, false), group.front()};
  s.split = true;
  if (cut_short_ || hit_cost(s, br, group) >= hit_cost(t, br, group)) {
    lines_.resize(lines0);
    ids_.resize(ids1);
    cut_short_ = false;
    return t;
  }
  // The split tree stays: the equal cuts' nodes end nodes_, their leaf entries lie before the split tree's.
  nodes_.resize(nodes0);
  ids_.erase(ids_.begin() + static_cast<std::ptrdiff_t>(ids0), ids_.begin() + static_cast<std::ptrdiff_t>(ids1));
  for (size_t l = lines0; l < lines_.size(); l++) {
    SplitLine& line = lines_[l];
    if ((line.w[15] & kLineLeaf) && line.w[0] > kLineIds) line.w[1] -= static_cast<uint32_t>(ids1 - ids0);
  }
  return s;
}

// The hit model over one tree alone: the mean cost of a header at the
// centre of each of (up to kHitPoints of) the group's rules that need no
// re-check, walked and scanned as first() would.
double FamilyCuts::hit_cost(const Tree& t, const std::vector<CutsRule>& br, const std::vector<uint32_t>& group) const {
  const size_t step = (group.size() + kHitPoints - 1) / kHitPoints;
  double cost = 0;
  size_t points = 0;
  for (size_t j = 0; j < group.size(); j += step) {
    if (br[group[j]].id & kVerify) continue;
    const RuleBox& box = br[group[j]].box;
    uint32_t key[kCutDims] = {0};
    for (int b = 0; b < dims(); b++) key[b] = static_cast<uint32_t>((uint64_t(box.lo[b]) + box.hi[b]) / 2);
    uint32_t best = ~0u;
    cost += tree_cost(t, key, &best);
    points++;
  }
  return points ? cost / double(points) : 0;
}

// The hit model's cost of one header (clamped keys) through tree t, its
// first rule below *best to *best: the walk, then the leaf's entries up to the hit.
double FamilyCuts::tree_cost(const Tree& t, const uint32_t* key, uint32_t* best) const {
  double cost = kLeafStep;
  const uint32_t* ids;
  uint32_t count, shift = 0;  // shift: a leaf line's entries are box offsets
  if (t.split) {
    int levels = 0;
    const SplitLine& l = lines_[split_leaf(static_cast<uint32_t>(t.root), key, &levels)];
    cost += levels * (kWalkStep + kModelLine);
    count = l.w[0];
    if (count <= kLineIds) shift = kLineBoxShift;
    ids = shift ? &l.w[1] : &ids_[l.w[1]];
  } else {
    uint64_t n = t.root;
    while (!(n & kLeaf)) {
      n = nodes_[uint32_t(n) + ((key[(n >> 32) & 7] >> ((n >> 40) & 31)) & uint32_t(n >> 48))];
      cost += kWalkStep + kModelLine;
    }
    ids = &ids_[uint32_t(n)];
    count = uint32_t(n >> 32) & 0x7fffffffu;
  }
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t r = shift ? ids[i] >> shift : ids[i] & ~kVerify;
    if (r >= *best) break;
    cost += kEntryStep + kModelLine;
    if (boxes_[r].holds(key, dims())) {
      *best = r;
      break;
    }
  }
  return cost;
}

// Expected cost below a node, its keys given in its box: each run of slices
// sharing a child weighs that child's cost by the run's share of the box.
double FamilyCuts::node_cost(const Family& f, uint64_t n, uint32_t* lo, uint32_t* wb) const {
  if (n & kLeaf) return kLeafStep + double(uint32_t(n >> 32) & 0x7fffffffu) * (kEntryStep + kModelLine);
  const int d = (n >> 32) & 7;
  const uint32_t shift = (n >> 40) & 31, np = uint32_t(n >> 48) + 1, first = uint32_t(n);
  const Dim& dim = f.dims[dims_[d]];
  const uint64_t base = lo[d];
  const uint32_t saved_wb = wb[d];
  const double total = model_share(dim, clamp_[d], base, base + (uint64_t(1) << saved_wb) - 1);
  double below = 0;
  for (uint32_t s = 0; s < np && total > 0;) {
    uint32_t e = s + 1;
    while (e < np && nodes_[first + e] == nodes_[first + s]) e++;
    const double run = model_share(dim, clamp_[d], base + (uint64_t(s) << shift), base + (uint64_t(e) << shift) - 1);
    if (run > 0) {
      lo[d] = static_cast<uint32_t>(base + (uint64_t(s) << shift));
      wb[d] = shift;
      below += run / total * node_cost(f, nodes_[first + s], lo, wb);
    }
    s = e;
  }
  lo[d] = static_cast<uint32_t>(base);
  wb[d] = saved_wb;
  return kWalkStep + kModelLine + below;
}

uint32_t FamilyCuts::compact_rule(int c, const uint32_t* key) const {
  const int lane = 0;
  uint32_t rule = ~0u;
  compact_lanes(c, reinterpret_cast<const uint32_t(*)[kCutDims]>(key), &lane, 1, &rule);
  return rule;
}

// The first rule of compacts_[c] for each of the nl lanes live[], into out[]
// where lower: a step of all lanes at a time so that their loads overlap.
void FamilyCuts::compact_lanes(int c, const uint32_t (*keys)[kCutDims], const int* live, int nl, uint32_t* out) const {
  const CompactIndex& ci = *compacts_[c];
  const Family& cf = ci.family();
  const FamilyIndex& cfx = ci.index();
  const int F = cf.dim_count, S = static_cast<int>(cfx.stages.size());
  uint32_t cls[2 * kMaxDims][kMaxLanes];
  // A clamped key is in the table dimension's last interval, so in the derived one's.
  for (int d = 0; d < F; d++) {
    const int b = box_of_[d];
    mapped_classes(
        cf.dims[d], cfx.maps[d], nl, [&](int i) { return uint64_t(keys[live[i]][b]); }, cls[d]);
  }
  stage_classes(cfx, F, cls, nl);
  for (int i = 0; i < nl; i++) {
    const uint32_t bit = cls[F + S - 1][i];
    if (bit < ci.size()) out[live[i]] = std::min(out[live[i]], ci.rule(bit));
  }
}

int FamilyCuts::address_filters() const {
  int n = 0;
  for (const Tree& t : trees_) n += t.filter >= 0;
  return n;
}

int FamilyCuts::split_groups() const {
  int n = 0;
  for (const Tree& t : trees_) n += t.split && !splits_;
  return n;
}

void FamilyCuts::drop_trees() {
  clear_trees();
  std::vector<ScanBox>().swap(boxes_);
  std::vector<uint32_t>().swap(first_rules_);
  usable_ = false;
}

void FamilyCuts::clear_trees() {
  std::vector<uint64_t>().swap(nodes_);
  std::vector<uint32_t>().swap(ids_);
  std::vector<SplitLine>().swap(lines_);
  std::vector<uint64_t>().swap(filters_);
  trees_.clear();
  compacts_.clear();
  cut_short_ = splits_ = false;
  wide_splits_ = 0;
}

}  // namespace nfsieve
