// Cut trees: the lookup structure for large rule sets, derived at load from
// the table's per-field bit-vectors (never stored, never changing a verdict).
//
// WHAT IT IS. HiCuts (Gupta and McKeown, 1999) with EffiCuts' and CutSplit's
// partitioning. Each rule is first turned back into a box: per field, the
// elementary intervals whose vector holds the rule's bit, read off by XORing
// the vectors of neighbouring intervals (a rule's bit flips exactly where its
// range starts and ends). A box side is [lo, hi] in key space; a condition
// that is not one interval (a list, a negation) gets its hull and the rule is
// flagged to be re-checked against the vectors when its box matches.
//
// The rules are split into groups by which of the two widest fields (the
// addresses, in a 5-tuple table) are "small" (at most 1/65536 of the field's
// domain, a /16 or longer prefix): a /32 source and a wildcard destination
// never share a tree with the reverse, so neither forces the other to be
// copied into every child. Each group gets one tree. A tree node owns an
// aligned box of key space and cuts one field into 2^b equal slices;
// (key >> shift) & (2^b - 1) names the child, so a node is one 64-bit word
// (child array: bits 0-31, field: 32-34, shift: 40-44, mask: 48-63; a leaf
// has bit 63 set, its first entry in bits 0-31 and its length above) and
// a step is one shift, one mask and one load. Slices with the same rules share
// one child. A node with at most kLeafRules rules (or where no cut separates
// them) is a leaf: a run of rule numbers in rule order, each naming its box
// (one 64-byte line per rule, stored once).
//
// WORKED EXAMPLE. Rules on (dst, dport), keys 0-255 and 0-15 for brevity:
//   r0: dst 10-10, dport 0-15       r1: dst 0-127, dport 5-5
//   r2: dst 0-255, dport 0-15
// r2 is large in both fields and goes to its own group (a single leaf). r0
// and r1: the root cuts dst into 2 slices of 128: slice 0 gets {r0, r1},
// slice 1 gets {} . With kLeafRules 1, slice 0 is cut again on dst into
// 16-key slices, [0,15] gets {r0,r1}, the rest {r1}, and so on until the
// rules separate or no cut helps. A packet (dst 10, dport 5) walks root ->
// slice 0 -> [0,15] -> leaf {r0, r1}: r0's box holds it, the group's answer is
// r0; r2's group answers r2; the packet's first match is min(r0, r2) = r0.
//
// LOOKUP COST. Per group, a walk of depth d (typically 2-6 loads) and a leaf
// scan of at most kLeafRules boxes, compared 8 fields at once with AVX2 (two
// compares reading the box, an OR and a test: ScanBox) or field by field in
// the scalar path; groups whose first rule is already beaten are skipped, and a
// leaf scan stops at the first rule past the best so far. Up to 32 packets
// walk in lockstep so their cache misses overlap (lanes()). None of this
// depends on how the rules' fields interleave across the rule list, which
// is what made the bit-vector AND read empty blocks at 10k-100k rules.
//
// THE GROUP WIDE IN BOTH ADDRESSES. Its rules (a few hundred in fw1-5, acl2
// and ipc1 at 10k, the catch-alls among them) differ only in ports and
// protocol, where equal cuts go deep and leaves stay long; and a header that
// matches nothing earlier (most random headers) always reaches it. So when
// the vector index over that group alone (compact.h) ends in a stage that
// names the rule, it serves the group instead of a tree: five maps and three
// or four stage loads, the same for every header (fw1_10k random headers
// 88.9 -> 69.1 ns, acl2_10k 91.7 -> 45.7; docs/algorithm.md). The other
// groups keep their trees: as vector indexes they cost more than their walks
// (fw1_10k's small-small group: 31 -> 80 ns). `index.groupIndex` turns it off.
//
// ADDRESS-BLOCK MAPS. A group small in an address touches few of that
// address's 2^16 blocks (the /16s of an IPv4 address: fw1_10k's three such
// groups touch 983, 2,303 and 5,679 of 65,536), so its tree keeps an 8 KiB
// bitmap of them (Tree::filter) and a header whose block is not in it skips
// the tree: one load instead of a walk, a leaf scan and the lanes'
// bookkeeping. A small side spans at most two blocks, and both are marked, so
// a skipped tree never held the answer. Random headers skip nearly every such
// tree (fw1_10k 545 -> 321 instructions per header, ipc1_10k 629 -> 302);
// headers that match in another group skip most (ClassBench-style fw1_10k
// 425 -> 294). Of two small addresses the map that leaves out more blocks is
// kept; none is built where it would keep more than half.
// `index.addressFilters` turns them off.
//
// TWO KINDS OF TREE. The equal cuts above suit rule sets whose fields spread
// over key space (fw, ipc, acl2-4). Where one address group holds at least
// 9/10 of the rules (acl1, acl5: /32 pairs bunched in a few /16s, which no
// equal cut separates), or at most 8,192 rules can be first (covered.cc
// leaves out the rest), or at most 16,384 and a split tree over a quarter of
// them stays small (acl3, acl4 at 10k), the family gets instead ONE split tree (splits.cc):
// nodes of up to 15 split points placed at rule ends, one 64-byte line per
// level, leaves listing their rules in the line. If the kind tried first
// blows its budget the other is tried (ipc1_100k: equal cuts blow theirs, a
// split tree of 673 lines serves it). When both do, equal cuts cut short (with
// twice the work) are priced against the vector index by the miss and hit
// models (index.h) and the cheaper serves (acl4_100k: the trees, 16,436 -> 898
// instructions per random header). Under equal cuts, a group of at least
// 256 rules also gets a split tree over the same rules, and the hit model
// keeps the cheaper of its two trees (CutSplit's choice, per group:
// group_tree() in cuts.cc). ipc1_10k's three groups take split trees (their
// equal-cut leaves were long: 627 -> 554 instructions and 18 -> 12 L1
// misses per uniform header, 93 -> 53 ns), acl2_10k's small-small group one,
// the fw sets none. The choice is a function of the rule set
// alone; `index.trees` forces one kind (the tests; 'cuts' keeps every group
// on equal cuts).
// Instructions per packet, callgrind (docs/algorithm.md has every set):
// acl1_10k 601 -> 457 (random headers 996 -> 477), acl5_10k 718 -> 426,
// ipc1_100k 801 (vector index) -> 529.
//
// BUILD COST. Box extraction reads each field's vectors once per interval
// boundary (O(boundaries x words)); a node tries every field and every cut
// count with a difference array (O(rules + slices)) and keeps the cut with the
// smallest largest child whose total copies stay under kSpace x rules. The
// tree stops growing at a memory budget; past it, nodes become long leaves,
// which are slower but give the same answers.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "table.h"

namespace nfsieve {

struct FamilyIndex;
class CompactIndex;
class CutsBuilder;

constexpr int kCutDims = 8;  // fields a box holds (one AVX2 register of 32-bit keys)

struct alignas(32) RuleBox {
  uint32_t lo[kCutDims];
  uint32_t hi[kCutDims];
};

// A rule's box as the leaf scans hold it: each end stored so that a miss is
// one signed compare of a key against it, the box as the compare's memory
// operand. A key k is below lo when ~k > ~lo as unsigned, and above hi when
// k > hi; flipping bit 31 makes either a signed compare (AVX2 has no
// unsigned one). So below[d] = ~lo ^ 2^31 = lo ^ 0x7fffffff, above[d] = hi ^
// 2^31, and with the key prepared once per scan as k ^ 0x7fffffff and k ^
// 2^31, a box is two compares, an OR and a test, where the min/max form
// took a min, a max, two equals, an AND and a byte mask (docs/algorithm.md).
struct alignas(64) ScanBox {
  static constexpr uint32_t kBelow = 0x7fffffffu;
  static constexpr uint32_t kAbove = 0x80000000u;
  uint32_t below[kCutDims];
  uint32_t above[kCutDims];

  static ScanBox of(const RuleBox& b) {
    ScanBox s;
    for (int d = 0; d < kCutDims; d++) s.below[d] = b.lo[d] ^ kBelow, s.above[d] = b.hi[d] ^ kAbove;
    return s;
  }
  // A box that holds no key (its first field ends below where it starts).
  static ScanBox empty() {
    RuleBox none{};
    none.lo[0] = 1;
    return of(none);
  }
  uint32_t lo(int d) const { return below[d] ^ kBelow; }
  uint32_t hi(int d) const { return above[d] ^ kAbove; }
  bool holds(const uint32_t* key, int dims) const {
    for (int d = 0; d < dims; d++)
      if (key[d] < lo(d) || key[d] > hi(d)) return false;
    return true;
  }
};
static_assert(sizeof(ScanBox) == 64, "a scan box is one cache line");

// The fields where box b misses a key prepared as ScanBox says (below: k ^
// kBelow, above: k ^ kAbove, 8 fields): all ones where it is under lo or
// over hi, zero where the box holds it.
__attribute__((target("avx2"))) inline __m256i scan_box_fields(const ScanBox& b, __m256i below, __m256i above) {
  return _mm256_or_si256(_mm256_cmpgt_epi32(below, _mm256_load_si256(reinterpret_cast<const __m256i*>(b.below))),
                         _mm256_cmpgt_epi32(above, _mm256_load_si256(reinterpret_cast<const __m256i*>(b.above))));
}

// Whether box b misses the key in some field.
__attribute__((target("avx2"))) inline bool scan_box_misses(const ScanBox& b, __m256i below, __m256i above) {
  const __m256i m = scan_box_fields(b, below, above);
  return !_mm256_testz_si256(m, m);
}

// One node of a split tree (splits.cc), a 64-byte line. Inner: w[0..14] the
// split points p of one field, sorted, stored as (p - 1) ^ 2^31 (a signed
// compare then orders them as unsigned keys), unused ones INT32_MAX; w[15]
// the field (bits 28-30) and the line of the first child (bits 0-27); child
// i holds the keys from point i-1 to point i - 1, so its index is the number
// of points <= key. Leaf: w[15] has bit 31; w[0] the rule count; up to
// kLineIds rules in the line itself, w[1 + j] the byte offset of rule j's
// box (rule << kLineBoxShift: the scan adds it to the boxes' address, no
// mask and no shift) and bit j of w[15] set when it needs the full check
// (kVerify); or, for more rules, w[1] their start in the leaf entries.
struct alignas(64) SplitLine {
  uint32_t w[16];
};

// A rule as the builders see it: its box and its leaf entry.
struct CutsRule {
  uint32_t id;  // rule index | FamilyCuts::kVerify
  RuleBox box;
};

struct CutsLimits {
  bool enabled = true;
  enum Tree : uint8_t { kAuto, kCuts, kSplits };
  Tree tree = kAuto;            // one split tree (splits.cc) or equal cuts over groups: from the rule set, or forced
  uint64_t memory = 0;          // bytes of nodes and leaf entries per family; 0: max(8 MiB, table / 2)
  uint64_t work = 0;            // rules visited choosing equal cuts, rule ends sorted choosing splits, per family; 0: kCutsWork
  bool simd = true;             // AVX2 leaf scans where the CPU has them
  bool avx512 = true;           // and AVX-512 split walks where it has those (false: AVX2 at most)
  bool group_index = true;      // the group wide in both addresses through a vector index when it names the rule
  bool address_filters = true;  // a group small in an address skipped by the map of the address blocks its rules touch
  // What serves the family without trees (the vector index). When both kinds
  // of tree blow their budgets, equal cuts cut short are kept if the miss
  // model (index.h) prices them below it; null: never.
  const FamilyIndex* fallback = nullptr;
};

constexpr uint64_t kCutsWork = uint64_t(1) << 26;  // the default equal-cuts work budget (~0.3 s)

// The cut trees of one address family.
class FamilyCuts {
 public:
  bool usable() const { return usable_; }
  bool avx2() const { return avx2_; }      // boxes compared with AVX2
  bool avx512() const { return avx512_; }  // split trees walked with AVX-512
  int dims() const { return static_cast<int>(dims_.size()); }
  int dim(int i) const { return dims_[i]; }          // table dimension of box field i
  uint32_t clamp(int i) const { return clamp_[i]; }  // keys above it share its interval
  // The miss model's share of headers whose box field i lies in [a, z] (index.h).
  double share(int i, uint32_t a, uint32_t z) const;
  size_t byte_size() const;
  bool cut_short() const { return cut_short_; }
  bool split_trees() const { return splits_; }
  // When both kinds of tree blew their budgets: the miss model's cost of the
  // equal cuts cut short and of the vector index they were weighed against
  // (negative otherwise).
  double model_cost() const { return model_cost_; }
  double fallback_cost() const { return fallback_cost_; }
  double hit_cost() const { return hit_cost_; }  // the hit model's, likewise
  double fallback_hit_cost() const { return fallback_hit_cost_; }
  // The miss model over the equal-cut trees built (negative for a split tree or none).
  double miss_cost(const Family& f) const;
  // Groups served by a vector index instead of a tree (compacts_).
  int compact_groups() const { return static_cast<int>(compacts_.size()); }
  // Trees a header enters only when its address block is in the tree's map (Tree::filter).
  int address_filters() const;
  // Equal cuts: groups whose tree is a split tree, the hit model's choice (group_tree()).
  int split_groups() const;
  // Split-tree nodes that split a leaf-sized node further because it takes
  // many of the miss model's headers (splits.cc, "Wide leaves").
  uint32_t wide_splits() const { return wide_splits_; }
  // Rules left out of the trees because an earlier rule covers them (covered.cc).
  uint32_t covered() const { return covered_; }
  // The rules that can be first, when at most kCompactRules (compact.h); empty otherwise.
  const std::vector<uint32_t>& first_rules() const { return first_rules_; }
  // Frees the trees once another structure serves (covered() stays).
  void drop_trees();

  // The first rule whose interval conditions all hold for each of k packets
  // (keys[q] holds packet q's clamped keys, box field order): `rules` when
  // none. Rules flagged for re-checking call verify(q, rule).
  template <typename Verify>
  void first(const uint32_t (*keys)[kCutDims], int k, uint32_t rules, uint32_t* out, Verify verify) const;

  void build(const Table& table, const Family& f, const CutsLimits& limits);

 private:
  struct Tree {
    uint64_t root = 0;  // node word, or the root line of a split tree
    uint32_t min_rule = 0;
    int compact = -1;    // equal cuts: the group is served by compacts_[compact] instead of a tree
    bool split = false;  // root is a split tree's line (splits.cc)
    // Equal cuts over a group small in an address: the box field whose key,
    // shifted right by filter_shift, indexes the 2^16-bit map at
    // filters_[filter_at] of the blocks its rules touch (-1: none). A
    // header whose block is not in the map skips the tree.
    int filter = -1;
    uint32_t filter_shift = 0, filter_at = 0;
    bool admits(const uint64_t* filters, const uint32_t* key) const { return filter < 0 || in_map(filters, key); }
    // The map's bit for the key's block (filter >= 0).
    bool in_map(const uint64_t* filters, const uint32_t* key) const {
      const uint32_t b = key[filter] >> filter_shift;
      return (filters[filter_at + (b >> 6)] >> (b & 63)) & 1;
    }
    // The lanes of k that enter the tree (an earlier rule may still match
    // and the map admits the header) to live[], their node to the root;
    // returns how many. No branch on a lane: which lanes enter follows the
    // headers, which a predictor does not on spread traces (docs/algorithm.md).
    int enter(const uint64_t* filters, const uint32_t (*keys)[kCutDims], int k, const uint32_t* out, uint64_t* node,
              int* live) const {
      // Locals: the stores to node[] and live[] could otherwise alias them.
      const uint64_t at = root;
      const uint32_t least = min_rule;
      int nl = 0;
      if (filter < 0) {
        for (int q = 0; q < k; q++) {
          node[q] = at;
          live[nl] = q;
          nl += least < out[q];
        }
      } else {
        for (int q = 0; q < k; q++) {
          node[q] = at;
          live[nl] = q;
          nl += int(least < out[q]) & int(in_map(filters, keys[q]));
        }
      }
      return nl;
    }
  };
  bool usable_ = false;
  bool splits_ = false;
  bool cut_short_ = false;
  bool avx2_ = false;
  bool avx512_ = false;          // split trees walked with AVX-512 (splits.cc: walk_avx512())
  bool group_index_ = true;      // CutsLimits::group_index
  bool address_filters_ = true;  // CutsLimits::address_filters
  double model_cost_ = -1, fallback_cost_ = -1, hit_cost_ = -1, fallback_hit_cost_ = -1;
  uint32_t covered_ = 0;
  uint32_t wide_splits_ = 0;
  std::vector<uint32_t> first_rules_;
  std::vector<int> dims_;
  std::vector<uint32_t> clamp_;
  std::vector<uint64_t> domain_;  // model_domain() of each box field
  std::vector<Tree> trees_;
  std::vector<uint64_t> nodes_;
  std::vector<ScanBox> boxes_;     // one per rule, by rule index, then empty_box()
  std::vector<uint32_t> ids_;      // leaf entries: rule index | kVerify
  std::vector<SplitLine> lines_;   // split trees: children of a node are consecutive lines
  std::vector<uint64_t> filters_;  // equal cuts: the address-block maps of Tree::filter
  // Equal cuts: the group of rules wide in both addresses, when the vector
  // index over it names the rule (compact.h): a few loads instead of a
  // walk through cuts on ports and protocols (docs/algorithm.md).
  std::vector<std::shared_ptr<const CompactIndex>> compacts_;
  int box_of_[kMaxDims];  // table dimension -> its box field (-1: none)

  void clear_trees();
  bool small_split_tree(const std::vector<CutsRule>& br, const std::vector<uint32_t>& all);
  bool weigh_cut_short(const Family& f, const FamilyIndex& fx, const std::vector<CutsRule>& br,
                       const std::vector<uint32_t>* groups, const std::vector<uint32_t>& all, const uint32_t* wb, size_t budget,
                       uint64_t work);
  // Equal cuts over the address groups (cuts.cc).
  // Equal cuts over the groups (split_work: also try a split tree per group, group_tree()).
  void build_cuts(const Family& f, const std::vector<CutsRule>& br, const std::vector<uint32_t>* groups, const uint32_t* wb,
                  size_t budget, bool abandon, uint64_t work, uint64_t split_work);
  // The first rule of compacts_[c] whose conditions hold for one header's
  // box keys (~0u when none); for nl lanes at once, into out[] where lower.
  uint32_t compact_rule(int c, const uint32_t* key) const;
  void compact_lanes(int c, const uint32_t (*keys)[kCutDims], const int* live, int nl, uint32_t* out) const;
  void hit_costs(const Family& f, const FamilyIndex& fx, const std::vector<CutsRule>& br, const std::vector<uint32_t>& all,
                 double* trees, double* vector) const;
  double point_cost(const uint32_t* key) const;
  Tree group_tree(CutsBuilder* builder, const std::vector<CutsRule>& br, const std::vector<uint32_t>& group, const uint32_t* wb,
                  size_t budget, uint64_t split_work);
  double hit_cost(const Tree& t, const std::vector<CutsRule>& br, const std::vector<uint32_t>& group) const;
  double tree_cost(const Tree& t, const uint32_t* key, uint32_t* best) const;
  // The leaf line a key reaches from split-tree line root, and the levels walked (splits.cc).
  uint32_t split_leaf(uint32_t root, const uint32_t* key, int* levels) const;
  // A group small in an address: the map of the address blocks its rules touch (cuts.cc).
  void add_filter(const std::vector<CutsRule>& br, const std::vector<uint32_t>& group, const uint32_t* wb, const int* small,
                  int n, Tree* t);
  double filter_share(const Family& f, const Tree& t) const;
  double node_cost(const Family& f, uint64_t node, uint32_t* lo, uint32_t* wb) const;
  // Split trees: the leaf line each of the nl lanes live[] reaches from
  // `root`, and the first of its entries whose box holds the keys (its
  // count when none) (splits.cc).
  void walk_splits(const uint32_t (*keys)[kCutDims], const int* live, int nl, uint32_t root, uint32_t* leaf, uint32_t* pos) const;
  template <typename Verify>
  void leaf_scan(const uint32_t* key, const uint32_t* ids, uint32_t count, uint32_t* out, int q, Verify verify) const;

 public:
  static constexpr uint32_t kVerify = 0x80000000u;
  static constexpr uint64_t kLeaf = uint64_t(1) << 63;
  static constexpr uint32_t kLineLeaf = 0x80000000u;  // SplitLine::w[15] of a leaf
  static constexpr uint32_t kLineIds = 14;            // rule entries a leaf line holds itself
  static constexpr uint32_t kLineBoxShift = 6;        // a leaf line's entry: rule << kLineBoxShift
  // Boxes a leaf line's 32-bit offsets reach (the rules and the empty box).
  static constexpr size_t kLineBoxes = size_t(1) << (32 - kLineBoxShift);
  // The box at byte offset e (a leaf line's entry).
  static const ScanBox& line_box(const ScanBox* boxes, uint32_t e) {
    return *reinterpret_cast<const ScanBox*>(reinterpret_cast<const char*>(boxes) + e);
  }
  // The rule entries from position `from` of a line-held leaf, as leaf entries (rule | kVerify).
  static uint32_t line_entries(const SplitLine& l, uint32_t from, uint32_t* e);
  // The entry that fills a leaf line's unused places: a box holding no key.
  uint32_t empty_box() const { return static_cast<uint32_t>(boxes_.size() - 1); }
  static constexpr uint32_t kLinePoints = 15;  // split points a node line holds
  static constexpr int kMaxLanes = 32;         // packets one first() call walks, at most
  // Packets to walk at once: more load chains in flight. Split trees gained
  // up to 32; equal cuts were slower at 32 than at 16 when first tried, and
  // since the branch-free tree entry and the address maps are 7-22 % faster
  // at 32 (docs/algorithm.md, "A split tree per group").
  int lanes() const { return kMaxLanes; }
  // The first of `count` leaf entries whose box holds `key`, as a position;
  // count when none. Stops at rule ids >= `below`.
  uint32_t scan(const uint32_t* key, const uint32_t* ids, uint32_t count, uint32_t below) const;
  // The same for the nl lanes live[] at once: lane i's entries ids[i], count[i]
  // of them, stopping at rule ids >= out[live[i]]; positions to pos[i]. The
  // entries are equal-cut leaves in ids_ (the AVX2 scan reads past them).
  void scan_lanes(const uint32_t (*keys)[kCutDims], const int* live, int nl, const uint32_t* const* ids, const uint32_t* count,
                  const uint32_t* out, uint32_t* pos) const;

  friend class CutsBuilder;
  friend class SplitBuilder;
  friend uint32_t split_tree(FamilyCuts* c, const std::vector<CutsRule>& rules, const std::vector<uint32_t>& set, size_t budget,
                             bool abandon, uint64_t work, bool wide_leaves);
};

// Clears alive[r] for every rule r whose box lies inside the exact box of an
// earlier rule still alive (it is never the first candidate); returns how
// many (covered.cc).
uint32_t drop_covered(const std::vector<CutsRule>& rules, int dims, std::vector<uint8_t>* alive);

// True when boxes are compared with AVX2 (the CPU has it and NFSIEVE_SIMD is not "scalar").
bool cuts_avx2_available();
// True when split trees may be walked with AVX-512 F and BW (the CPU and the OS have them, and NFSIEVE_SIMD is
// neither "scalar" nor "avx2").
bool cuts_avx512_available();

// Whether each of 4 boxes, box(s) to box(s + 3), holds the key, as bit 4j
// for box(s + j): their misses packed to a byte a lane and box, a nibble a
// box in each half of the mask.
template <typename Box>
__attribute__((target("avx2"))) inline uint64_t hits4(Box box, int s, __m256i kb, __m256i ka) {
  const __m256i p =
      _mm256_packs_epi16(_mm256_packs_epi32(scan_box_fields(box(s), kb, ka), scan_box_fields(box(s + 1), kb, ka)),
                         _mm256_packs_epi32(scan_box_fields(box(s + 2), kb, ka), scan_box_fields(box(s + 3), kb, ka)));
  uint32_t m = static_cast<uint32_t>(_mm256_movemask_epi8(p));
  m |= m >> 16;  // nibble j: box j missed in some field
  m |= m >> 1;
  m |= m >> 2;
  return ~m & 0x1111u;
}

// The same for the boxes of leaf entries e[0..3].
__attribute__((target("avx2"))) inline uint64_t hits4(const ScanBox* boxes, const uint32_t* e, __m256i kb, __m256i ka) {
  return hits4([boxes, e](int j) -> const ScanBox& { return boxes[e[j] & ~FamilyCuts::kVerify]; }, 0, kb, ka);
}

template <typename Verify>
void FamilyCuts::leaf_scan(const uint32_t* key, const uint32_t* ids, uint32_t count, uint32_t* out, int q, Verify verify) const {
  for (uint32_t at = 0; at < count;) {
    const uint32_t pos = scan(key, ids + at, count - at, out[q]);
    if (pos == count - at) return;
    const uint32_t id = ids[at + pos];
    if (!(id & kVerify) || verify(q, id & ~kVerify)) {
      out[q] = id & ~kVerify;
      return;
    }
    at += pos + 1;
  }
}

template <typename Verify>
void FamilyCuts::first(const uint32_t (*keys)[kCutDims], int k, uint32_t rules, uint32_t* out, Verify verify) const {
  for (int q = 0; q < k; q++) out[q] = rules;
  for (const Tree& t : trees_) {
    uint64_t node[kMaxLanes];
    int live[kMaxLanes];
    const int nl = t.enter(filters_.data(), keys, k, out, node, &live[0]);
    if (t.compact >= 0) {
      compact_lanes(t.compact, keys, live, nl, out);
      continue;
    }
    if (t.split) {
      uint32_t leaf[kMaxLanes], pos[kMaxLanes];
      walk_splits(keys, live, nl, static_cast<uint32_t>(t.root), leaf, pos);
      for (int i = 0; i < nl; i++) {
        const int q = live[i];
        const SplitLine& l = lines_[leaf[i]];
        const uint32_t count = l.w[0];
        if (pos[i] == count) continue;
        if (count <= kLineIds) {
          const uint32_t id = l.w[1 + pos[i]] >> kLineBoxShift;
          if (!((l.w[15] >> pos[i]) & 1)) {
            if (id < out[q]) out[q] = id;
            continue;
          }
          uint32_t e[kLineIds];
          leaf_scan(keys[q], e, line_entries(l, pos[i], e), out, q, verify);
          continue;
        }
        const uint32_t* ids = &ids_[l.w[1]] + pos[i];
        if (!(*ids & kVerify) && *ids < out[q])
          out[q] = *ids;
        else
          leaf_scan(keys[q], ids, count - pos[i], out, q, verify);
      }
      continue;
    }
    // Lockstep walk: one level of every live lane per round.
    for (bool inner = true; inner;) {
      inner = false;
      for (int i = 0; i < nl; i++) {
        const int q = live[i];
        const uint64_t n = node[q];
        if (n & kLeaf) continue;
        const uint32_t d = (n >> 32) & 7, shift = (n >> 40) & 31, mask = uint32_t(n >> 48);
        node[q] = nodes_[uint32_t(n) + ((keys[q][d] >> shift) & mask)];
        inner = true;
      }
    }
    const uint32_t* ids[kMaxLanes];
    uint32_t count[kMaxLanes], pos[kMaxLanes];
    for (int i = 0; i < nl; i++) {
      const int q = live[i];
      ids[i] = &ids_[uint32_t(node[q])];
      count[i] = uint32_t(node[q] >> 32) & 0x7fffffffu;
    }
    scan_lanes(keys, live, nl, ids, count, out, pos);
    for (int i = 0; i < nl; i++) {
      const int q = live[i];
      if (pos[i] == count[i]) continue;
      if (!(ids[i][pos[i]] & kVerify))
        out[q] = ids[i][pos[i]];
      else
        leaf_scan(keys[q], ids[i] + pos[i], count[i] - pos[i], out, q, verify);
    }
  }
}

}  // namespace nfsieve
