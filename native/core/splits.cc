// Split trees: the other kind of tree in cuts.h, one per family, for rule
// sets whose rules cluster where equal cuts cannot separate them.
//
// WHY. Equal cuts halve key space, not rules: in acl1 and acl5 the rules are
// /32 pairs bunched in a few /16s, so at a node whose source box is still a
// /1 every slice but one is empty and the full one holds them all; leaves
// stay at 17-256 rules and four trees are walked per packet. A split tree
// (HyperSplit, Qi et al. 2009, made multi-way) puts its boundaries where the
// rules start and end, so a cluster of /32s is separated in a level or two
// whatever its size, and one tree serves every rule.
//
// A NODE is one 64-byte line (SplitLine in cuts.h): up to 15 split points of
// one field, sorted, so child i holds keys in [point i-1, point i). The child
// index is the number of points <= key: two AVX2 compares of the key against
// the 16 words (points stored as (p - 1) ^ 2^31 so a signed compare orders
// them as unsigned; unused points INT32_MAX), packed into one byte mask (two
// bits a point, the header word's masked off) and counted with a popcount;
// the scalar path sums 15 compares. Children are consecutive lines, so the
// next line is base + index: one line read per level, no pointer per child.
// A leaf line holds up to 14 rule entries itself (or points at a longer
// run), so the last level reads no further line; the rules' 64-byte boxes
// are then compared as in cut trees.
//
// A LEAF LINE'S SCAN has no branch that follows the header's answer. Its
// unused entries name a box that holds no key (FamilyCuts::empty_box()), so
// the scan compares 4 boxes, then, unless one held the key or the leaf has
// no more, the other 10, and the answer is the lowest bit of the hit mask
// (or the count). A scan that stopped at its first hit mispredicted about
// once a lane, and each misprediction threw away the next lanes' loads: the
// lanes no longer overlap. Headers that pass most of a leaf (random ones end
// at its catch-all; uniform ones each at another entry) gain most: acl1_10k
// random 28.2 -> 24.1 ns, acl3_10k 40.9 -> 33.2, acl5_10k uniform 31.2 ->
// 21.0 (docs/algorithm.md, "Leaf lines scanned whole"). Whether a lane needs
// the other 10 is itself the header's answer, so it is not a branch per lane
// either: a first pass compares every lane's first 4 and lists the lanes
// left, a second compares the rest for those (first4(), rest10()).
//
// AVX-512. Where the CPU has F and BW (and NFSIEVE_SIMD is not avx2), a
// level is one compare of the key against the line into a mask register, a
// box one compare of the key's both sides against its whole line, four
// boxes' masks one 64-bit word (walk_avx512()); 2-10 % at 10k rules.
//
// WIDE LEAVES. The splits above are chosen for headers that fall where the
// rules are. Headers that follow no rule (scans, floods from random
// sources; the miss model's headers, uniform over each field's keys: index.h)
// land mostly in a few leaves whose boxes are a large share of key space,
// and there scan the whole line to reach its catch-all: in acl1_10k, 97 % of
// random headers scanned 5-14 entries. A leaf-sized node (at most 14 rules)
// that takes at least 2^-12 of the model's headers is split further when
// that leaves them, weighted by each child's share, at most 0.7 of the boxes
// to compare: a leaf of at most 3 is decided by the first 4, a level counts
// as 3 boxes, and the plan (volume_cost()) looks two levels ahead; its
// children follow it. Points are every end of the node's rules in the field,
// or those of its widest segments when more than 15. acl1_10k: 932 such
// splits, +0.25 MiB; random headers compare 1.11 entries instead of 5.25
// (docs/algorithm.md, "Wide leaves").
//
// CHOOSING A SPLIT. For each field, the rules' ranges clipped to the node
// give the distinct points where one starts or ends; the segments between
// them are weighted by the rules covering them, and k-1 points are placed at
// the k-quantiles of that weight (k = 2, 4, 8, 16). Each candidate is scored
// by the rules a packet would still face, sum(child^2) / sum(child) (children
// entered in proportion to their rules), and beyond two children the
// children together may hold at most kSpace x the node's rules (copies of
// rules wide in the field count in each child they meet). More room means
// fewer levels where many rules are wide: acl3_10k walks 5.3 levels with
// kSpace 3, 7 with 2 (docs/algorithm.md). The best field and k win; a node
// with at most kLeafRules rules, or that no split shrinks, is a leaf. Rules
// after one covering the whole node box are dropped, as in cut trees.
//
// WORKED EXAMPLE (one field, keys 0-99, a leaf bound of 1): r0 [10,10], r1
// [12,12], r2 [40,60], r3 [0,99]. Clipped ends give points 10, 11, 12, 13,
// 40, 61; the seven segments are covered by 1, 2, 1, 2, 1, 2, 1 rules (sums
// 1, 3, 4, 6, 7, 9, 10), so with k = 4 the quantiles 2.5, 5, 7.5 pick 11, 13
// and 61: children
// [0,10] {r0, r3}, [11,12] {r1, r3}, [13,60] {r2, r3}, [61,99] {r3}. A key of
// 12 compares greater than or equal to one point (11): child 1, whose leaf
// line lists r1 then r3; r1's box holds 12, so the answer is r1.
//
// BUDGETS. Lines and long-leaf entries may use max(8 MiB, the table's size);
// choosing splits may sort 2^26 rule ends per family (half that when split
// trees are tried after equal cuts blew their budget). Past either the tree
// is cut short (long leaves, same answers) or dropped for the vector index.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "cuts.h"
#include "reserve.h"

namespace nfsieve {
namespace {

// A node with this many rules or fewer is a leaf: what its line holds. Against 8
// (the equal cuts' bound): acl3_10k 164 -> 84 ms of load and 9.8 -> 4.1 MiB,
// ClassBench-style 36.5 -> 34.7 ns, uniform 73.9 -> 64.0 ns (lookup driver).
constexpr uint32_t kLeafRules = FamilyCuts::kLineIds;
constexpr uint32_t kSpace = 3;               // rules a split's children hold, per rule of the node (beyond 2 children)
constexpr uint32_t kBias = 0x80000000u;      // unsigned keys ordered by a signed compare
constexpr uint32_t kPad = 0x7fffffffu;       // an unused split point: no key is above it
constexpr uint32_t kBaseMask = 0x0fffffffu;  // line of a node's first child
constexpr uint32_t kFieldShift = 28;
constexpr uint32_t kTrials[] = {2, 4, 8, 16};  // children a node is tried with
constexpr size_t kRadixMin = 64;               // shorter key lists are sorted by comparison
// Wide leaves (volume_split()): a leaf line's first 4 entries decide a
// header when it holds at most kScanFirst; a node that takes at least
// 2^-kVolumeBits of the miss model's headers and would scan more is split
// where the model's headers then compare at most kVolumeGain of the boxes,
// a level counted as kLevelCost boxes, the plan looking kVolumeDepth levels ahead.
constexpr uint32_t kScanFirst = 3;
constexpr int kVolumeBits = 12;
constexpr double kLevelCost = 3;
constexpr int kVolumeDepth = 2;
constexpr double kVolumeGain = 0.7;

static_assert(kBias == ScanBox::kAbove, "the walk's biased keys are the leaf scan's keys for the upper ends");

}  // namespace

class SplitBuilder {
 public:
  SplitBuilder(FamilyCuts* c, const std::vector<CutsRule>& rules, size_t budget, bool abandon, uint64_t work, bool wide_leaves)
      : c_(c), rules_(rules), budget_(budget), abandon_(abandon), wide_leaves_(wide_leaves), limit_(work) {
    // Each field's ends in a column of their own: a node reads one field of
    // its rules at a time, 4 bytes a rule instead of a 64-byte box.
    for (int d = 0; d < c->dims(); d++) {
      lo_[d].resize(rules.size());
      hi_[d].resize(rules.size());
      for (size_t i = 0; i < rules.size(); i++) {
        lo_[d][i] = rules[i].box.lo[d];
        hi_[d][i] = rules[i].box.hi[d];
      }
    }
  }

  uint32_t tree(const std::vector<uint32_t>& set) {
    uint32_t lo[kCutDims] = {0}, hi[kCutDims];
    for (int d = 0; d < kCutDims; d++) hi[d] = d < c_->dims() ? c_->clamp(d) : 0;
    // The lines outgrow the budget by one node's children at most (reserve.h).
    std::vector<SplitLine>& lines = c_->lines_;
    reserve_budget(&lines, budget_ + (FamilyCuts::kLinePoints + 2) * sizeof(SplitLine));
    const uint32_t at = static_cast<uint32_t>(lines.size());
    lines.emplace_back();
    arena_ = set;
    node(0, set.size(), lo, hi, at);
    trim_reserve(&lines);
    return at;
  }

 private:
  struct Split {
    int d = -1;
    uint32_t k = 0;                               // children
    uint32_t pts[FamilyCuts::kLinePoints] = {0};  // k - 1 points: child i starts at pts[i - 1]
    uint64_t largest = 0, total = 0, squares = 0;
    // Rules left to a packet whose child is chosen in proportion to its
    // rules: sum of squares over sum. Balances depth against copies.
    double score() const { return total ? double(squares) / double(total) : 0; }
  };
  FamilyCuts* c_;
  const std::vector<CutsRule>& rules_;
  size_t budget_;
  bool abandon_;
  bool wide_leaves_;           // leaves that take many of the miss model's headers are split further
  int follow_ = 0;             // levels left of a plan volume_split() made: its children split as it planned
  uint64_t limit_, work_ = 0;  // rule ends sorted while choosing splits: the budget, and so far
  std::vector<uint32_t> lo_[kCutDims], hi_[kCutDims];  // rules' ends by field
  // The rule lists of the nodes on the path being built, each node's
  // children's lists after its own (truncated when they are done).
  std::vector<uint32_t> arena_;
  std::vector<uint32_t> a_, z_, p_, tmp_;
  std::vector<uint32_t> span_;               // per rule of a node: its first and last child
  std::vector<uint32_t> a_below_, z_below_;  // per point p_[j]: rules starting, ending below it
  std::vector<uint64_t> cum_;

  size_t used() const { return c_->lines_.size() * sizeof(SplitLine) + c_->ids_.size() * 4; }

  // A leaf of the n rules at arena_[off].
  void leaf(size_t off, size_t n, uint32_t at) {
    SplitLine& l = c_->lines_[at];
    std::memset(&l, 0, sizeof(l));
    l.w[15] = FamilyCuts::kLineLeaf;
    l.w[0] = static_cast<uint32_t>(n);
    if (n <= FamilyCuts::kLineIds) {
      for (size_t i = 0; i < n; i++) {
        const uint32_t id = rules_[arena_[off + i]].id;
        l.w[1 + i] = (id & ~FamilyCuts::kVerify) << FamilyCuts::kLineBoxShift;
        if (id & FamilyCuts::kVerify) l.w[15] |= uint32_t(1) << i;
      }
      for (size_t i = n; i < FamilyCuts::kLineIds; i++) l.w[1 + i] = c_->empty_box() << FamilyCuts::kLineBoxShift;
      return;
    }
    l.w[1] = static_cast<uint32_t>(c_->ids_.size());
    for (size_t i = 0; i < n; i++) c_->ids_.push_back(rules_[arena_[off + i]].id);
  }

  // Sorts keys that lie in [base, base + span]: a counting pass per byte of
  // key - base, least significant first, skipping the bytes span does not
  // reach or all keys share (deep nodes have narrow boxes); short lists by
  // comparison. A sort per field and node was a fifth of acl3_10k's load.
  void sort_keys(std::vector<uint32_t>* v, uint32_t base, uint32_t span) {
    const size_t n = v->size();
    if (n < kRadixMin) return std::sort(v->begin(), v->end());
    const int bytes = span >> 24 ? 4 : span >> 16 ? 3 : span >> 8 ? 2 : 1;
    uint32_t count[4][256] = {};
    for (uint32_t x : *v)
      for (int b = 0; b < bytes; b++) count[b][((x - base) >> (8 * b)) & 255]++;
    tmp_.resize(n);
    for (int b = 0; b < bytes; b++) {
      uint32_t* c = count[b];
      const uint32_t* src = v->data();
      if (c[((src[0] - base) >> (8 * b)) & 255] == n) continue;
      for (uint32_t i = 0, sum = 0; i < 256; i++) sum += std::exchange(c[i], sum);
      uint32_t* dst = tmp_.data();
      for (size_t i = 0; i < n; i++) dst[c[((src[i] - base) >> (8 * b)) & 255]++] = src[i];
      v->swap(tmp_);
    }
  }

  // The distinct points inside (lo, hi] where a rule's clipped range starts
  // or ends, the rules covering each segment they make, summed, and the rules
  // starting and ending below each point (what a child's count needs).
  void segments(uint32_t lo, uint32_t hi) {
    p_.clear();
    size_t i = 0, j = 0;
    while (i < a_.size() || j < z_.size()) {
      uint64_t v;
      if (j == z_.size() || (i < a_.size() && uint64_t(a_[i]) <= uint64_t(z_[j]) + 1))
        v = a_[i++];
      else
        v = uint64_t(z_[j++]) + 1;
      if (v > lo && v <= hi && (p_.empty() || p_.back() != v)) p_.push_back(static_cast<uint32_t>(v));
    }
    cum_.assign(p_.size() + 1, 0);
    a_below_.resize(p_.size());
    z_below_.resize(p_.size());
    uint64_t sum = 0;
    size_t ia = 0, iz = 0, ib = 0;
    for (size_t s = 0; s <= p_.size(); s++) {
      const uint32_t start = s == 0 ? lo : p_[s - 1];
      while (ib < a_.size() && a_[ib] < start) ib++;
      while (ia < a_.size() && a_[ia] <= start) ia++;
      while (iz < z_.size() && z_[iz] < start) iz++;
      if (s > 0) {
        a_below_[s - 1] = static_cast<uint32_t>(ib);
        z_below_[s - 1] = static_cast<uint32_t>(iz);
      }
      sum += ia - iz;
      cum_[s] = sum;
    }
  }

  // The best split of field d (node box [lo, hi] in it) for the n rules at arena_[off], if better than *best.
  void try_field(size_t off, size_t n, int d, uint32_t lo, uint32_t hi, Split* best) {
    a_.resize(n);
    z_.resize(n);
    const uint32_t* set = arena_.data() + off;
    for (size_t i = 0; i < n; i++) {
      a_[i] = std::max(lo_[d][set[i]], lo);
      z_[i] = std::min(hi_[d][set[i]], hi);
    }
    sort_keys(&a_, lo, hi - lo);
    sort_keys(&z_, lo, hi - lo);
    work_ += n * 2;
    segments(lo, hi);
    if (p_.empty()) return;
    const uint64_t total_w = cum_[p_.size()];
    for (uint32_t k : kTrials) {
      Split s;
      s.d = d;
      uint32_t at[FamilyCuts::kLinePoints];  // p_ index of each point
      size_t j = 0;
      for (uint32_t c = 1; c < k; c++) {
        const uint64_t target = total_w * c / k;
        while (j < p_.size() && cum_[j] < target) j++;
        if (j >= p_.size()) break;
        if (s.k == 0 || s.pts[s.k - 1] < p_[j]) {
          at[s.k] = static_cast<uint32_t>(j);
          s.pts[s.k++] = p_[j];
        }
      }
      if (s.k == 0) continue;
      s.k++;  // children = points + 1
      for (uint32_t c = 0; c < s.k; c++) {
        // Rules meeting child c: clipped ranges starting at or before its end, less those ending before its start.
        const uint64_t m = (c + 1 == s.k ? n : a_below_[at[c]]) - (c == 0 ? 0 : z_below_[at[c - 1]]);
        s.largest = std::max(s.largest, m);
        s.total += m;
        s.squares += m * m;
      }
      if (k > 2 && s.total > kSpace * n) break;
      if (best->d < 0 || s.score() < best->score()) *best = s;
    }
  }

  void inner(const Split& s, uint32_t at, uint32_t base) {
    SplitLine& l = c_->lines_[at];
    for (uint32_t i = 0; i < FamilyCuts::kLinePoints; i++) l.w[i] = i + 1 < s.k ? (s.pts[i] - 1) ^ kBias : kPad;
    l.w[15] = uint32_t(s.d) << kFieldShift | base;
  }

  // The node at line `at` for the n rules at arena_[off], in the box [lo, hi].
  // Rules after one that covers the whole box (and needs no re-check) can
  // never be the first match here: dropped.
  void node(size_t off, size_t n, const uint32_t* lo, const uint32_t* hi, uint32_t at) {
    for (size_t j = 0; j < n; j++) {
      if (covers(arena_[off + j], lo, hi)) {
        n = j + 1;
        break;
      }
    }
    if (n <= kLeafRules) {
      if (wide_leaves_ && n > kScanFirst && (follow_ > 0 || wide_node(lo, hi)) && volume_split(off, n, lo, hi, at)) return;
      return leaf(off, n, at);
    }
    if (used() > budget_ || work_ > limit_ || c_->lines_.size() + FamilyCuts::kLinePoints + 1 > kBaseMask) c_->cut_short_ = true;
    if (c_->cut_short_) return leaf(off, abandon_ ? 0 : n, at);
    Split best;
    for (int d = 0; d < c_->dims(); d++)
      if (lo[d] < hi[d]) try_field(off, n, d, lo[d], hi[d], &best);
    if (best.d < 0 || best.largest >= n) return leaf(off, n, at);  // no split separates them
    split(off, n, best, lo, hi, at);
  }

  // The node at line `at` as split s of its n rules at arena_[off], its children built in turn.
  void split(size_t off, size_t n, const Split& s, const uint32_t* lo, const uint32_t* hi, uint32_t at) {
    const uint32_t base = static_cast<uint32_t>(c_->lines_.size());
    c_->lines_.resize(base + s.k);
    inner(s, at, base);
    size_t start[FamilyCuts::kLinePoints + 2];
    const size_t kids = children(off, n, s, start);
    const int d = s.d;
    uint32_t clo[kCutDims], chi[kCutDims];
    std::memcpy(clo, lo, sizeof(clo));
    std::memcpy(chi, hi, sizeof(chi));
    for (uint32_t c = 0; c < s.k; c++) {
      clo[d] = c == 0 ? lo[d] : s.pts[c - 1];
      chi[d] = c + 1 == s.k ? hi[d] : s.pts[c] - 1;
      node(start[c], start[c + 1] - start[c], clo, chi, base + c);
    }
    arena_.resize(kids);
  }

  // Whether the miss model sends at least 2^-kVolumeBits of its headers into the box.
  bool wide_node(const uint32_t* lo, const uint32_t* hi) const {
    double share = 1;
    for (int d = 0; d < c_->dims(); d++) share *= c_->share(d, lo[d], hi[d]);
    return share >= std::exp2(-double(kVolumeBits));
  }

  // Boxes a leaf of m entries compares for a header it does not hold: the first 4, or the whole line.
  static double scan_cost(uint64_t m) { return m <= kScanFirst ? kScanFirst + 1 : FamilyCuts::kLineIds; }

  // Whether rule r covers the box [lo, hi] (and needs no re-check).
  bool covers(uint32_t r, const uint32_t* lo, const uint32_t* hi) const {
    if (rules_[r].id & FamilyCuts::kVerify) return false;
    for (int d = 0; d < c_->dims(); d++)
      if (lo_[d][r] > lo[d] || hi_[d][r] < hi[d]) return false;
    return true;
  }

  // Up to kLinePoints cut points of field d for the rules `set` in the box:
  // every end inside it if they fit, else the ends of the widest segments.
  uint32_t volume_points(const uint32_t* set, size_t n, int d, uint32_t lo, uint32_t hi, uint32_t* pts) const {
    uint32_t p[2 * FamilyCuts::kLineIds];
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
      const uint32_t a = lo_[d][set[i]], z = hi_[d][set[i]];
      if (a > lo && a <= hi) p[np++] = a;
      if (z >= lo && z < hi) p[np++] = z + 1;
    }
    std::sort(p, p + np);
    np = static_cast<size_t>(std::unique(p, p + np) - p);
    if (np <= FamilyCuts::kLinePoints) return static_cast<uint32_t>(std::copy(p, p + np, pts) - pts);
    std::pair<uint64_t, size_t> seg[2 * FamilyCuts::kLineIds + 1];
    for (size_t s = 0; s <= np; s++) seg[s] = {(s == np ? uint64_t(hi) + 1 : p[s]) - (s == 0 ? lo : p[s - 1]), s};
    std::sort(seg, seg + np + 1,
              [](const auto& x, const auto& y) { return x.first != y.first ? x.first > y.first : x.second < y.second; });
    bool taken[2 * FamilyCuts::kLineIds] = {};
    uint32_t k = 0;
    for (size_t g = 0; g <= np; g++) {
      const size_t s = seg[g].second;
      const bool left = s > 0 && !taken[s - 1], right = s < np && !taken[s];
      if (k + left + right > FamilyCuts::kLinePoints) break;
      if (left) taken[s - 1] = true, k++;
      if (right) taken[s] = true, k++;
    }
    k = 0;
    for (size_t s = 0; s < np; s++)
      if (taken[s]) pts[k++] = p[s];
    return k;
  }

  // What a header uniform in the box [lo, hi] compares, in boxes, for the
  // rules `set` (n at most kLeafRules): a leaf's scan, or a level and its
  // children's costs weighted by their share of the box, `depth` levels
  // ahead; the best split into *plan.
  double volume_cost(const uint32_t* set, size_t n, const uint32_t* lo, const uint32_t* hi, int depth, Split* plan) {
    double best = scan_cost(n);
    if (n <= kScanFirst || depth == 0) return best;
    uint32_t pts[FamilyCuts::kLinePoints], kid[FamilyCuts::kLineIds], clo[kCutDims], chi[kCutDims];
    for (int d = 0; d < c_->dims(); d++) {
      if (lo[d] >= hi[d]) continue;
      const uint32_t np = volume_points(set, n, d, lo[d], hi[d], pts);
      work_ += n;
      const double whole = c_->share(d, lo[d], hi[d]);
      if (np == 0 || whole <= 0) continue;
      std::memcpy(clo, lo, sizeof(clo));
      std::memcpy(chi, hi, sizeof(chi));
      double cost = kLevelCost;
      for (uint32_t c = 0; c <= np && cost < best; c++) {
        clo[d] = c == 0 ? lo[d] : pts[c - 1];
        chi[d] = c == np ? hi[d] : pts[c] - 1;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
          const uint32_t r = set[i];
          if (lo_[d][r] > chi[d] || hi_[d][r] < clo[d]) continue;
          kid[m++] = r;
          if (covers(r, clo, chi)) break;
        }
        cost += c_->share(d, clo[d], chi[d]) / whole * volume_cost(kid, m, clo, chi, depth - 1, nullptr);
      }
      if (cost < best) {
        best = cost;
        if (plan) plan->d = d, plan->k = np + 1, std::copy(pts, pts + np, plan->pts);
      }
    }
    return best;
  }

  // A leaf-sized node that headers uniform in its box would scan whole (its
  // box a large share of key space): split where volume_cost() says.
  bool volume_split(size_t off, size_t n, const uint32_t* lo, const uint32_t* hi, uint32_t at) {
    if (used() > budget_ || work_ > limit_ || c_->lines_.size() + FamilyCuts::kLinePoints + 1 > kBaseMask) return false;
    Split plan;
    uint32_t set[FamilyCuts::kLineIds];
    std::copy(arena_.begin() + off, arena_.begin() + off + n, set);
    const double cost = volume_cost(set, n, lo, hi, kVolumeDepth, &plan);
    if (plan.d < 0 || (follow_ == 0 && cost > kVolumeGain * scan_cost(n))) return false;
    c_->wide_splits_++;
    const int was = std::exchange(follow_, follow_ > 0 ? follow_ - 1 : kVolumeDepth - 1);
    split(off, n, plan, lo, hi, at);
    follow_ = was;
    return true;
  }

  // Each of the n rules at arena_[off] into the children of split s its
  // range meets (child c starts at pts[c - 1]), in order: child c's list is
  // arena_[start[c], start[c + 1]), appended. Returns where they begin.
  size_t children(size_t off, size_t n, const Split& s, size_t* start) {
    const uint32_t* pts = s.pts;
    const uint32_t* pend = pts + s.k - 1;
    uint32_t first[FamilyCuts::kLinePoints + 1] = {0}, last[FamilyCuts::kLinePoints + 2] = {0};
    span_.resize(n);
    for (size_t j = 0; j < n; j++) {
      const uint32_t i = arena_[off + j];
      const uint32_t f = static_cast<uint32_t>(std::upper_bound(pts, pend, lo_[s.d][i]) - pts);
      const uint32_t l = static_cast<uint32_t>(std::upper_bound(pts, pend, hi_[s.d][i]) - pts);
      span_[j] = f | l << 8;
      first[f]++;  // the rules meeting child c: those starting at or before it, less those ending before it
      last[l + 1]++;
    }
    const size_t kids = arena_.size();
    size_t at = kids, starting = 0, ended = 0;
    for (uint32_t c = 0; c < s.k; c++) {
      starting += first[c];
      ended += last[c];
      start[c] = at;
      at += starting - ended;
    }
    start[s.k] = at;
    arena_.resize(at);
    size_t fill[FamilyCuts::kLinePoints + 1];
    std::copy(start, start + s.k, fill);
    for (size_t j = 0; j < n; j++)
      for (uint32_t c = span_[j] & 255; c <= span_[j] >> 8; c++) arena_[fill[c]++] = arena_[off + j];
    return kids;
  }
};

uint32_t split_tree(FamilyCuts* c, const std::vector<CutsRule>& rules, const std::vector<uint32_t>& set, size_t budget,
                    bool abandon, uint64_t work, bool wide_leaves) {
  SplitBuilder b(c, rules, budget, abandon, work, wide_leaves);
  return b.tree(set);
}

namespace {

// The first of a leaf's `count` entries whose box holds the key (count when
// none), two boxes a step: one branch on "both missed" instead of one a box,
// whose exit mispredicts about once a packet when headers match different
// rules (docs/algorithm.md, "Fewer branches that follow the header").
__attribute__((target("avx2"))) uint32_t scan_pairs(const ScanBox* boxes, const uint32_t* e, uint32_t count, __m256i kb,
                                                    __m256i ka) {
  uint32_t j = 0;
  for (; j + 1 < count; j += 2) {
    const bool m0 = scan_box_misses(boxes[e[j] & ~FamilyCuts::kVerify], kb, ka);
    const bool m1 = scan_box_misses(boxes[e[j + 1] & ~FamilyCuts::kVerify], kb, ka);
    if (!(m0 & m1)) return j + m0;
  }
  if (j < count && scan_box_misses(boxes[e[j] & ~FamilyCuts::kVerify], kb, ka)) j++;
  return j;
}

// A leaf line's scan in two passes over the lanes. The first compares each
// lane's first 4 entries, which decide a lane that holds at most 3 or hits
// one of them, and lists the lanes left; the second compares the other 10 for
// those. Whether a lane needs the rest follows its header; as a branch per
// lane it mispredicted wherever lanes' leaves differ in length.
__attribute__((target("avx2"))) inline uint32_t first4(const ScanBox* boxes, const uint32_t* e, uint32_t count, __m256i kb,
                                                       __m256i ka) {
  const auto at = [boxes, e](int j) -> const ScanBox& { return FamilyCuts::line_box(boxes, e[j]); };
  return static_cast<uint32_t>(hits4(at, 0, kb, ka) | uint64_t(1) << 4 * count) & 0xffff;
}

__attribute__((target("avx2"))) inline uint32_t rest10(const ScanBox* boxes, const uint32_t* e, uint32_t count, __m256i kb,
                                                       __m256i ka) {
  static_assert(FamilyCuts::kLineIds == 14, "a leaf line is scanned as 4 + 4 + 4 + 2 entries");
  const auto at = [boxes, e](int j) -> const ScanBox& { return FamilyCuts::line_box(boxes, e[j]); };
  const uint64_t last = uint64_t(!scan_box_misses(at(12), kb, ka)) | uint64_t(!scan_box_misses(at(13), kb, ka)) << 4;
  const uint64_t hit = hits4(at, 4, kb, ka) << 16 | hits4(at, 8, kb, ka) << 32 | last << 48 | uint64_t(1) << 4 * count;
  return static_cast<uint32_t>(__builtin_ctzll(hit)) / 4;
}

// The keys of lanes live[0..nl) biased for the signed compares, once a walk.
__attribute__((target("avx2"))) inline void bias_keys(const uint32_t (*keys)[kCutDims], const int* live, int nl,
                                                      int32_t (*biased)[kCutDims]) {
  const __m256i bias = _mm256_set1_epi32(static_cast<int>(kBias));
  for (int i = 0; i < nl; i++)
    _mm256_store_si256(reinterpret_cast<__m256i*>(biased[i]),
                       _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(keys[live[i]])), bias));
}

// Each lane one level down a round until every lane is at its leaf; child(line, biased key) is the
// number of the line's points <= the key. Lanes already at a leaf are passed over.
template <typename Child>
__attribute__((always_inline)) inline void walk_levels(const SplitLine* lines, const int32_t (*biased)[kCutDims], int nl,
                                                       uint32_t* at, Child child) {
  for (bool inner = true; inner;) {
    inner = false;
    for (size_t i = 0; i < size_t(nl); i++) {
      const SplitLine& l = lines[at[i]];
      const uint32_t meta = l.w[15];
      if (meta & FamilyCuts::kLineLeaf) continue;
      inner = true;
      at[i] = (meta & kBaseMask) + child(l, biased[i][meta >> kFieldShift]);
    }
  }
}

// The leaf scan of each lane at[i] in two passes (see "A LEAF LINE'S SCAN"):
// first(line, i) compares its first 4 entries and answers 4 when none holds
// the key and more may; rest(line, i) the other 10 for the lanes left;
// pairs(line, i) scans a long leaf's run. pos[i] is the entry that holds the
// key, or the count.
template <typename Pairs, typename First, typename Rest>
__attribute__((always_inline)) inline void scan_leaves(const SplitLine* lines, int nl, const uint32_t* at, uint32_t* pos,
                                                       Pairs pairs, First first, Rest rest) {
  int left[FamilyCuts::kMaxLanes], nr = 0;
  for (int i = 0; i < nl; i++) {
    const SplitLine& l = lines[at[i]];
    if (l.w[0] > FamilyCuts::kLineIds) {
      pos[i] = pairs(l, i);
      continue;
    }
    pos[i] = first(l, i);
    left[nr] = i;
    nr += pos[i] == 4;
  }
  for (int r = 0; r < nr; r++) pos[left[r]] = rest(lines[at[left[r]]], left[r]);
}

// Each lane to its leaf (one line per level), then the first leaf entry whose box holds its keys.
// The keys are copied once, biased for the signed compare, so a level loads its field's key
// straight into a broadcast; the two compares are packed to 16 bits, two mask bits per point.
__attribute__((target("avx2,popcnt"))) void walk_avx2(const SplitLine* lines, const ScanBox* boxes, const uint32_t* ids,
                                                      const uint32_t (*keys)[kCutDims], const int* live, int nl, uint32_t* at,
                                                      uint32_t* pos) {
  alignas(32) int32_t biased[FamilyCuts::kMaxLanes][kCutDims];
  bias_keys(keys, live, nl, biased);
  walk_levels(
      lines, biased, nl, at, [](const SplitLine& l, int32_t key) __attribute__((target("avx2,popcnt"))) {
        const __m256i k = _mm256_set1_epi32(key);
        const __m256i a = _mm256_cmpgt_epi32(k, _mm256_load_si256(reinterpret_cast<const __m256i*>(l.w)));
        const __m256i b = _mm256_cmpgt_epi32(k, _mm256_load_si256(reinterpret_cast<const __m256i*>(l.w + 8)));
        // Word 15 (the meta word) lands in the top two mask bits.
        const uint32_t m = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_packs_epi32(a, b))) & 0x3fffffffu;
        return static_cast<uint32_t>(__builtin_popcount(m)) >> 1;
      });
  const __m256i ones = _mm256_set1_epi32(-1);
  // The key as ScanBox compares it: k ^ kAbove is the biased key above, k ^ kBelow its complement.
  const auto above = [&biased](int i) __attribute__((target("avx2"))) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(biased[i]));
  };
  scan_leaves(
      lines, nl, at, pos,
      [&](const SplitLine& l, int i) __attribute__((target("avx2"))) {
        return scan_pairs(boxes, ids + l.w[1], l.w[0], _mm256_xor_si256(above(i), ones), above(i));
      },
      [&](const SplitLine& l, int i) __attribute__((target("avx2"))) {
        const uint32_t hit = first4(boxes, &l.w[1], l.w[0], _mm256_xor_si256(above(i), ones), above(i));
        return static_cast<uint32_t>(__builtin_ctz(hit | 0x10000u)) / 4;
      },
      [&](const SplitLine& l, int i)
          __attribute__((target("avx2"))) { return rest10(boxes, &l.w[1], l.w[0], _mm256_xor_si256(above(i), ones), above(i)); });
}

// The same walk with AVX-512 (F and BW). A level is one compare of the key
// against the line's 16 words into a mask register; a box is one compare of
// the key, below and above side by side in one register, against its whole
// line (ScanBox: below[8] then above[8]), which misses where any bit is set.
// Four boxes' masks are joined into one 64-bit word, where the first box that
// holds the key is the lowest 16-bit lane that is zero.
__attribute__((target("avx512f"))) inline __mmask16 misses_avx512(const ScanBox& b, __m512i k) {
  return _mm512_cmpgt_epi32_mask(k, _mm512_load_si512(&b));
}

__attribute__((target("avx512f,avx512bw"))) inline uint64_t miss4_avx512(const ScanBox& b0, const ScanBox& b1, const ScanBox& b2,
                                                                         const ScanBox& b3, __m512i k) {
  return _cvtmask64_u64(_mm512_kunpackd(_mm512_kunpackw(misses_avx512(b3, k), misses_avx512(b2, k)),
                                        _mm512_kunpackw(misses_avx512(b1, k), misses_avx512(b0, k))));
}

// The same for two boxes; the two lanes above them are all ones (missed).
__attribute__((target("avx512f,avx512bw"))) inline uint64_t miss2_avx512(const ScanBox& b0, const ScanBox& b1, __m512i k) {
  return _cvtmask32_u32(_mm512_kunpackw(misses_avx512(b1, k), misses_avx512(b0, k))) | 0xffffffff00000000ull;
}

// Bit j (j < 4) set for box j of miss4_avx512()'s word when it holds the key, exact for the
// lowest such box (a zero lane's borrow may mark the lanes above it, which come later).
inline uint32_t held4(uint64_t m) {
  const uint64_t z = (m - 0x0001000100010001ull) & ~m & 0x8000800080008000ull;
  return static_cast<uint32_t>(((z >> 15) * 0x0001000200040008ull) >> 48) & 0xf;
}

__attribute__((target("avx512f,avx512bw,popcnt"))) void walk_avx512(const SplitLine* lines, const ScanBox* boxes,
                                                                    const uint32_t* ids, const uint32_t (*keys)[kCutDims],
                                                                    const int* live, int nl, uint32_t* at, uint32_t* pos) {
  alignas(32) int32_t biased[FamilyCuts::kMaxLanes][kCutDims];
  bias_keys(keys, live, nl, biased);
  walk_levels(
      lines, biased, nl, at, [](const SplitLine& l, int32_t key) __attribute__((target("avx512f,popcnt"))) {
        const uint32_t m = _cvtmask16_u32(_mm512_cmpgt_epi32_mask(_mm512_set1_epi32(key), _mm512_load_si512(l.w)));
        return static_cast<uint32_t>(__builtin_popcount(m & 0x7fffu));
      });
  const __m256i ones = _mm256_set1_epi32(-1);
  const __m512i low_ones = _mm512_set_epi64(0, 0, 0, 0, -1, -1, -1, -1);
  const auto above = [&biased](int i) __attribute__((target("avx2"))) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(biased[i]));
  };
  // The key below (kb) then above (ka), as a ScanBox line holds its ends.
  const auto key = [&](int i) __attribute__((target("avx512f"))) {
    return _mm512_xor_si512(_mm512_mask_broadcast_i64x4(_mm512_setzero_si512(), 0xff, above(i)), low_ones);
  };
  scan_leaves(
      lines, nl, at, pos,
      [&](const SplitLine& l, int i) __attribute__((target("avx2"))) {
        return scan_pairs(boxes, ids + l.w[1], l.w[0], _mm256_xor_si256(above(i), ones), above(i));
      },
      [&](const SplitLine& l, int i) __attribute__((target("avx512f,avx512bw"))) {
        const auto box = [boxes, &l](int j) -> const ScanBox& { return FamilyCuts::line_box(boxes, l.w[1 + j]); };
        const uint32_t hit = (held4(miss4_avx512(box(0), box(1), box(2), box(3), key(i))) | 1u << l.w[0]) & 0xfu;
        return static_cast<uint32_t>(__builtin_ctz(hit | 0x10u));
      },
      [&](const SplitLine& l, int i) __attribute__((target("avx512f,avx512bw"))) {
        const auto box = [boxes, &l](int j) -> const ScanBox& { return FamilyCuts::line_box(boxes, l.w[1 + j]); };
        const __m512i k = key(i);
        const uint32_t hit = held4(miss4_avx512(box(4), box(5), box(6), box(7), k)) |
                             held4(miss4_avx512(box(8), box(9), box(10), box(11), k)) << 4 |
                             held4(miss2_avx512(box(12), box(13), k)) << 8 | 1u << (l.w[0] - 4);
        return 4 + static_cast<uint32_t>(__builtin_ctz(hit));
      });
}

// The child line of inner line l that holds the key: the number of its split points <= the key's field.
inline uint32_t child_line(const SplitLine& l, const uint32_t* key) {
  const int32_t k = static_cast<int32_t>(key[l.w[15] >> kFieldShift] ^ kBias);
  uint32_t idx = 0;
  for (uint32_t j = 0; j < FamilyCuts::kLinePoints; j++) idx += k > static_cast<int32_t>(l.w[j]);
  return (l.w[15] & kBaseMask) + idx;
}

void walk_scalar(const SplitLine* lines, const ScanBox* boxes, const uint32_t* ids, const uint32_t (*keys)[kCutDims],
                 const int* live, int nl, int dims, uint32_t* at, uint32_t* pos) {
  for (bool inner = true; inner;) {
    inner = false;
    for (int i = 0; i < nl; i++) {
      const SplitLine& l = lines[at[i]];
      if (l.w[15] & FamilyCuts::kLineLeaf) continue;
      at[i] = child_line(l, keys[live[i]]);
      inner = true;
    }
  }
  for (int i = 0; i < nl; i++) {
    const SplitLine& l = lines[at[i]];
    const uint32_t count = l.w[0];
    const bool line = count <= FamilyCuts::kLineIds;
    const uint32_t* e = line ? &l.w[1] : ids + l.w[1];
    const uint32_t* k = keys[live[i]];
    uint32_t j = 0;
    for (; j < count; j++) {
      const ScanBox& b = line ? FamilyCuts::line_box(boxes, e[j]) : boxes[e[j] & ~FamilyCuts::kVerify];
      if (b.holds(k, dims)) break;
    }
    pos[i] = j;
  }
}

}  // namespace

uint32_t FamilyCuts::line_entries(const SplitLine& l, uint32_t from, uint32_t* e) {
  const uint32_t n = l.w[0] - from;
  for (uint32_t j = 0; j < n; j++) e[j] = l.w[1 + from + j] >> kLineBoxShift | ((l.w[15] >> (from + j)) & 1 ? kVerify : 0);
  return n;
}

uint32_t FamilyCuts::split_leaf(uint32_t root, const uint32_t* key, int* levels) const {
  uint32_t at = root;
  *levels = 0;
  for (; !(lines_[at].w[15] & kLineLeaf); ++*levels) at = child_line(lines_[at], key);
  return at;
}

void FamilyCuts::walk_splits(const uint32_t (*keys)[kCutDims], const int* live, int nl, uint32_t root, uint32_t* leaf,
                             uint32_t* pos) const {
  for (int i = 0; i < nl; i++) leaf[i] = root;
  if (avx512_)
    walk_avx512(lines_.data(), boxes_.data(), ids_.data(), keys, live, nl, leaf, pos);
  else if (avx2_)
    walk_avx2(lines_.data(), boxes_.data(), ids_.data(), keys, live, nl, leaf, pos);
  else
    walk_scalar(lines_.data(), boxes_.data(), ids_.data(), keys, live, nl, dims(), leaf, pos);
}

}  // namespace nfsieve
