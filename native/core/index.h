// The lookup index: derived from a loaded table when a classifier is made,
// never stored in it. It changes how fast a packet finds its candidates, not
// which rule it gets: the table stays the one format to validate, and the
// evaluator without the index (tests) gives the same answers.
//
// Two parts, after RFC (Gupta and McKeown, "Packet classification on multiple
// fields", 1999), laid over the table's per-field bit-vectors:
//  - per field, the key goes straight to its class: a direct array for keys
//    below 2^17 (ports, protocols, ICMP type/code) and a 16-8-8 multibit trie
//    for 32-bit keys (IPv4 addresses, SPIs); IPv6 addresses keep the binary
//    search over the table's boundaries;
//  - fields with few classes are pre-combined in pairs: a stage maps (class
//    of a, class of b) to the class of the AND of their vectors, deduplicated.
//    When two operands remain and their product is small enough, the last
//    stage stores the first candidate rule itself, and a lookup ANDs nothing.
// Pre-combination stops at fixed work and memory budgets, so the index costs
// a bounded multiple of the table; what remains is ANDed per packet as before.
#pragma once

#include <cstdint>
#include <vector>

#include "table.h"

namespace nfsieve {

struct IndexLimits {
  bool combine = true;  // pre-combine fields at all
  uint64_t work = 0;    // vector words touched while combining, per family; 0: index_work()
  uint64_t memory = 0;  // bytes of derived vectors and maps; 0: max(8 MiB, 2 x table)
  enum Cuts : uint8_t { kCutsOff, kCutsAuto, kCutsAlways };
  Cuts cuts = kCutsAuto;     // cut trees (cuts.h): never, where the rule set calls for them, always
  uint64_t cuts_memory = 0;  // bytes of cut trees per family; 0: max(8 MiB, table / 2)
  uint64_t cuts_work = 0;    // work of building trees per family (cuts.h); 0: the defaults (2^26)
  enum Tree : uint8_t { kTreeAuto, kTreeCuts, kTreeSplits };
  Tree tree = kTreeAuto;        // which trees when trees are built: from the rule set, equal cuts, split points
  bool simd = true;             // AVX2 where the CPU has it (NFSIEVE_SIMD=scalar also turns it off)
  bool avx512 = true;           // AVX-512 split walks where it has those (false or NFSIEVE_SIMD=avx2: AVX2 at most)
  bool group_index = true;      // equal cuts: the group wide in both addresses through a vector index (cuts.h)
  bool address_filters = true;  // equal cuts: a group small in an address skipped by a map of its address blocks (cuts.h)
};

// The default combining work of a family: 2^22 vector words (~10 ms), four
// times that for a family of at most 4,096 rules (one summary word), which
// the vector index serves alone: its final stage, when the work reaches it,
// takes 40 % off the lookup (acl3_1k 318 -> 191 instructions per packet) for
// a few ms more load (acl3_1k 10 -> 15 ms compile + load, fw4_1k 9 -> 18-20).
constexpr uint64_t kIndexWork = uint64_t(1) << 22;
constexpr uint64_t kSmallIndexWork = kIndexWork * 4;
inline uint64_t index_work(const Family& f) { return f.summary_words <= 1 ? kSmallIndexWork : kIndexWork; }

// Field key -> class.
struct FieldMap {
  enum Kind : uint8_t { kSearch, kDirect, kTrie } kind = kSearch;
  uint32_t direct_size = 0;  // kDirect: keys < direct_size index `direct`
  uint32_t above = 0;        // kDirect: class of every key >= direct_size
  std::vector<uint16_t> direct;
  std::vector<uint16_t> trie;                 // kTrie: 65536 first-level entries, then 256-entry chunks
  static constexpr uint16_t kChunk = 0x8000;  // entry flag: the rest is a chunk number
  static constexpr uint32_t kMaxChunks = 0x8000;
  // Entry e of a trie: a class, or the chunk at chunk_offset(e).
  static uint32_t chunk_offset(uint16_t e) { return 65536 + (uint32_t(e & 0x7fff) << 8); }

  uint32_t direct_class(uint64_t key) const { return key < direct_size ? direct[key] : above; }
  // A 32-bit key's class: one load, or three. The first level branches (keys
  // outside the rules' /16s end there, and that branch predicts well); below
  // it an entry that is a class is read again from where it was instead of
  // branching on its chunk flag, which mispredicts about once a packet on
  // traces whose keys spread over the rules (docs/algorithm.md).
  uint32_t trie_class(uint32_t key) const {
    const uint16_t* t = trie.data();
    uint16_t e = t[key >> 16];
    if (e & kChunk) {
      const uint32_t at = chunk_offset(e) + ((key >> 8) & 255);
      e = t[next_entry(t[at], at, key & 255)];
    }
    return e;
  }
  // Where a trie walk reads next: entry e's chunk at `byte`, or `at` again
  // when e is a class (selected with a mask, not a branch).
  static uint32_t next_entry(uint16_t e, uint32_t at, uint32_t byte) {
    const uint32_t chunk = 0u - (uint32_t(e) >> 15);
    return (at & ~chunk) | ((chunk_offset(e) + byte) & chunk);
  }
};

// An operand of the final AND: a field, or a stage's result.
struct Operand {
  uint32_t count = 0;  // classes
  const uint64_t* vectors = nullptr;
  const uint64_t* summaries = nullptr;
  bool has_base = false;  // vectors already ANDed with the family's base
};

// (class of a, class of b) -> class of the combination (or, when final, the
// first candidate rule; rule_count when none).
struct Stage {
  int a = 0, b = 0;
  uint32_t b_count = 0;
  uint32_t count = 0;  // classes it produces (not final)
  bool final = false;
  std::vector<uint32_t> map;                 // (a, b) -> a * b_count + b; empty when map16 holds it
  std::vector<uint16_t> map16;               // the same in half the memory, when every value fits
  std::vector<uint64_t> vectors, summaries;  // not final: count x words, count x summary words
};

struct FamilyIndex {
  std::vector<FieldMap> maps;     // one per table dimension, same order
  std::vector<Operand> operands;  // dims first, then one per stage
  std::vector<Stage> stages;      // in evaluation order; operand dims + i is stage i's result
  std::vector<int> roots;         // operands ANDed per packet (empty when the last stage is final)
  bool base_root = true;          // the base vector must be ANDed too
};

class LookupIndex {
 public:
  LookupIndex(const Table& table, const IndexLimits& limits);
  const FamilyIndex& family(int fam) const { return fam == 4 ? fam4_ : fam6_; }
  size_t byte_size() const { return bytes_; }

 private:
  FamilyIndex fam4_, fam6_;
  size_t bytes_ = 0;
};

// The vector index of one family of `rules` rules (maps, then stages while
// the budgets last; the defaults scale with `table_bytes`); returns its bytes.
// `resumes`: some rule may not end the scan (residual checks, a non-terminal
// action), so a final stage keeps its two operands' vectors to scan on from.
size_t build_family_index(const Family& f, uint32_t rules, size_t table_bytes, const IndexLimits& limits, bool resumes,
                          FamilyIndex* out);

// The class of a narrow key through a map (the table's search when the map has none).
uint32_t narrow_class(const Dim& dim, const FieldMap& map, uint64_t key);

// The pre-combined stages for k lanes: cls[i][q] holds lane q's class of
// operand i, for the dimensions on entry and for each stage's result
// (operand dims + s) on return; the last, when final, is the rule.
template <int Lanes>
inline void stage_classes(const FamilyIndex& fx, int dims, uint32_t (*cls)[Lanes], int k) {
  for (size_t s = 0; s < fx.stages.size(); s++) {
    const Stage& st = fx.stages[s];
    const uint32_t *a = cls[st.a], *b = cls[st.b];
    uint32_t* to = cls[dims + s];
    if (st.map16.empty()) {
      for (int q = 0; q < k; q++) to[q] = st.map[size_t(a[q]) * st.b_count + b[q]];
    } else {
      for (int q = 0; q < k; q++) to[q] = st.map16[size_t(a[q]) * st.b_count + b[q]];
    }
  }
}

// The classes of k narrow keys, key(i) the i-th, through a direct array or a
// trie: the map's kind chosen once for all of them, the lookups inlined.
template <typename Key>
inline void mapped_classes(const Dim& dim, const FieldMap& map, int k, Key key, uint32_t* out) {
  if (map.kind == FieldMap::kDirect) {
    for (int i = 0; i < k; i++) out[i] = map.direct_class(key(i));
    return;
  }
  if (map.kind == FieldMap::kTrie) {
    for (int i = 0; i < k; i++) {
      const uint64_t x = key(i);
      out[i] = x <= 0xffffffffu ? map.trie_class(static_cast<uint32_t>(x)) : narrow_class(dim, map, x);
    }
    return;
  }
  for (int i = 0; i < k; i++) out[i] = narrow_class(dim, map, key(i));
}

// THE MISS MODEL, shared by the vector index and the cut trees to choose
// between them at load: the expected work of one header that matches no rule
// (the costly case for both: every candidate block ANDed, every tree walked
// to a leaf and the leaf scanned to its end), its fields independent and each
// uniform over the keys a header can carry in that field (model_domain). A
// function of the table and the structures built from it, nothing else.
// Units are instructions, plus kModelLine for each line a step reads from a
// structure too large for the cache (counted from the code; docs/algorithm.md
// compares the model with callgrind).
constexpr double kModelLine = 10;
// Keys a header can carry in a narrow field, uniform under the model: 2^32
// for addresses and SPIs, 2^16 ports, 2^8 protocols, otherwise up to the last
// boundary.
uint64_t model_domain(const Dim& dim);
// Share of the model's keys, clamped to at most `clamp`, that fall in [a, z].
double model_share(uint64_t domain, uint64_t clamp, uint64_t a, uint64_t z);
inline double model_share(const Dim& dim, uint64_t clamp, uint64_t a, uint64_t z) {
  return model_share(model_domain(dim), clamp, a, z);
}
// The model's cost of a header through a family's vector index; negative when
// the model does not apply (a 128-bit field).
double vector_miss_cost(const Family& f, const FamilyIndex& fx);
// THE HIT MODEL beside it: the work of one header that matches a rule, at a
// given point (one key per table dimension), the scan stopping at the first
// candidate, in the same units. Averaged over points inside the rules (cuts.cc).
double vector_hit_cost(const Family& f, const FamilyIndex& fx, const uint64_t* keys);

}  // namespace nfsieve
