// The vector index over the rules that can be first: the third structure
// that answers a family's first candidate, beside the two kinds of tree
// (cuts.h), for tables of many rules of which few can be first.
//
// WHY. covered.cc finds the rules no header can reach first; on the
// synthesised 100k sets only 16-563 remain of 100,000. Trees over so few
// rules still cost a walk and a leaf scan per packet (fw5_100k 25, ipc2_100k
// 28 ns, ClassBench-style trace), while the vector index (index.h) of a
// table that small names the rule with a few loads. The table's own vectors
// are 100,000 bits wide, so the index is built instead over a family
// derived from them, one bit per rule that can be first (fw5_100k 13.7,
// ipc2_100k 12.9 ns).
//
// WHAT IS DERIVED. For each table dimension, each of the table's vectors
// keeps the bits of the rules in `ids` (bit j is rule ids[j]); equal
// results are stored once, and neighbouring intervals whose classes become
// equal are merged, so the boundaries left are those where some remaining
// rule starts or ends. The base vector has every bit. The vector index is
// then built over that family (build_family_index) with the memory budget
// of a table that size and four times the combining work (its vectors are a
// few words long), and a lookup maps the rule it names back through ids.
// The bits are exact (no hulls), so nothing is re-checked; a rule with
// residual checks or a non-terminal action goes on to the full scan, as
// after the trees.
//
// The same index over one address group of equal cuts serves that group
// instead of its tree: the group of rules wide in both addresses (cuts.h).
//
// LIMITS. Only families whose every dimension is narrow (IPv4; IPv6
// addresses are wide), with at most kCompactRules rules that can be first;
// the derivation reads each table vector once per remaining rule, at most
// kCompactWork bit tests. And only when the index's last stage names the
// rule: with operands left to AND, ipc1_100k (333 rules) took 28 ns against
// the split tree's 25. Otherwise the trees serve.
#pragma once

#include <cstdint>
#include <vector>

#include "index.h"
#include "table.h"

namespace nfsieve {

constexpr size_t kCompactRules = 1024;
constexpr uint64_t kCompactWork = uint64_t(1) << 27;
constexpr uint64_t kCompactWorkFactor = 4;  // the index's combining work, in IndexLimits::work

class CompactIndex {
 public:
  // Derives the family over `ids` (ascending table rules, all in f's base) and
  // builds its vector index; false when past the limits above or when the
  // index's last stage does not name the rule (then the trees serve).
  bool build(const Family& f, const std::vector<uint32_t>& ids, const IndexLimits& limits);
  const Family& family() const { return f_; }
  const FamilyIndex& index() const { return fx_; }
  uint32_t rule(uint32_t bit) const { return ids_[bit]; }
  uint32_t size() const { return static_cast<uint32_t>(ids_.size()); }
  size_t byte_size() const { return bytes_; }

 private:
  Family f_;
  std::vector<uint32_t> ids_;
  std::vector<uint64_t> boundaries_[kMaxDims];
  std::vector<uint32_t> classes_[kMaxDims];
  std::vector<uint64_t> vectors_[kMaxDims], summaries_[kMaxDims];
  std::vector<uint64_t> base_, base_summary_;
  FamilyIndex fx_;
  size_t bytes_ = 0;

  void derive_dim(const Family& f, int i, uint32_t words, uint32_t swords);
};

}  // namespace nfsieve
