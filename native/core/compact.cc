// Deriving the family of the rules that can be first (compact.h explains).
#include "compact.h"

#include <unordered_map>

namespace nfsieve {
namespace {

struct VecHash {
  size_t operator()(const std::vector<uint64_t>& v) const {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint64_t x : v) h = (h ^ x) * 0xff51afd7ed558ccdull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

}  // namespace

bool CompactIndex::build(const Family& f, const std::vector<uint32_t>& ids, const IndexLimits& limits) {
  if (ids.empty() || ids.size() > kCompactRules) return false;
  uint64_t work = 0;
  for (int i = 0; i < f.dim_count; i++) {
    if (f.dims[i].wide) return false;
    work += uint64_t(f.dims[i].vector_count) * ids.size();
  }
  if (work > kCompactWork) return false;
  ids_ = ids;
  const uint32_t words = static_cast<uint32_t>((ids.size() + 63) / 64), swords = (words + 63) / 64;
  f_.words = words;
  f_.summary_words = swords;
  f_.dim_count = f.dim_count;
  base_.assign(words, ~0ull);
  if (ids.size() % 64) base_.back() = (uint64_t(1) << (ids.size() % 64)) - 1;
  base_summary_.assign(swords, 0);
  for (uint32_t w = 0; w < words; w++) base_summary_[w >> 6] |= uint64_t(1) << (w & 63);
  f_.base = base_.data();
  f_.base_summary = base_summary_.data();
  for (int i = 0; i < f.dim_count; i++) derive_dim(f, i, words, swords);
  // Budgets as for a table of these rules alone (a few MiB), not of the whole table.
  size_t derived = 0;
  for (int i = 0; i < f.dim_count; i++) derived += (vectors_[i].size() + summaries_[i].size() + boundaries_[i].size()) * 8;
  // Four times the work: its vectors are a few words, so a stage of many
  // class pairs is cheap to fill (ipc1_100k's final stage needs it).
  IndexLimits own = limits;
  own.work = (limits.work ? limits.work : kIndexWork) * kCompactWorkFactor;
  bytes_ = build_family_index(f_, static_cast<uint32_t>(ids.size()), derived, own, false, &fx_);  // no decide() scan
  // Kept only when its last stage names the rule: a few loads per packet.
  // With operands left to AND it lost to the split tree on ipc1_100k.
  if (fx_.stages.empty() || !fx_.stages.back().final) return false;
  for (int i = 0; i < f.dim_count; i++)
    bytes_ += boundaries_[i].size() * 8 + classes_[i].size() * 4 + (vectors_[i].size() + summaries_[i].size()) * 8;
  bytes_ += ids_.size() * 4;
  return true;
}

// One dimension: every table vector cut down to the rules in ids_, equal ones
// stored once, then the intervals merged where their classes became equal.
void CompactIndex::derive_dim(const Family& f, int i, uint32_t words, uint32_t swords) {
  const Dim& dim = f.dims[i];
  std::unordered_map<std::vector<uint64_t>, uint32_t, VecHash> seen;
  std::vector<uint32_t> cls_of(dim.vector_count);
  std::vector<uint64_t> v(words);
  for (uint32_t c = 0; c < dim.vector_count; c++) {
    const uint64_t* tv = dim.vectors + size_t(c) * f.words;
    std::fill(v.begin(), v.end(), 0);
    for (size_t j = 0; j < ids_.size(); j++)
      if ((tv[ids_[j] >> 6] >> (ids_[j] & 63)) & 1) v[j >> 6] |= uint64_t(1) << (j & 63);
    auto [it, fresh] = seen.emplace(v, static_cast<uint32_t>(seen.size()));
    if (fresh) {
      vectors_[i].insert(vectors_[i].end(), v.begin(), v.end());
      for (uint32_t s = 0; s < swords; s++) {
        uint64_t sum = 0;
        for (uint32_t w = s * 64; w < words && w < s * 64 + 64; w++)
          if (v[w]) sum |= uint64_t(1) << (w & 63);
        summaries_[i].push_back(sum);
      }
    }
    cls_of[c] = it->second;
  }
  // Interval k lies below boundary k; a boundary stays where the class changes.
  classes_[i].push_back(cls_of[dim.classes[0]]);
  for (uint32_t k = 0; k < dim.boundary_count; k++) {
    const uint32_t next = cls_of[dim.classes[k + 1]];
    if (next == classes_[i].back()) continue;
    boundaries_[i].push_back(dim.boundaries[k]);
    classes_[i].push_back(next);
  }
  Dim& out = f_.dims[i];
  out.field = dim.field;
  out.wide = false;
  out.boundary_count = static_cast<uint32_t>(boundaries_[i].size());
  out.boundaries = boundaries_[i].data();
  out.classes = classes_[i].data();
  out.vectors = vectors_[i].data();
  out.summaries = summaries_[i].data();
  out.vector_count = static_cast<uint32_t>(seen.size());
}

}  // namespace nfsieve
