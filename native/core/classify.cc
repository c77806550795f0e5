// Evaluation of a decision table (see src/compile/build.ts for the layout's
// rationale): the AND of one class vector per field and the family's base
// vector has one bit per rule whose interval conditions hold. Candidates are
// taken lowest bit first, their residual checks applied, and non-terminal
// actions (count, mark and continue, skip) resume the scan further on. How a
// batch of packets reaches its vectors (or, through the lookup index, its
// first candidate directly) is in lanes.cc.
#include "classify.h"
#include "wire.h"

#include <cstring>

namespace nfsieve {
namespace {

// The lowest rule index >= start whose bit is set in every vector. Summary
// words (one bit per 64-rule block) are ANDed first, so only blocks where all
// fields have some candidate are read.
inline bool next_candidate(const uint64_t* const* vec, const uint64_t* const* sum, int n, uint32_t words, uint32_t swords,
                           uint32_t start, uint32_t* rule) {
  uint32_t first = start >> 6;
  if (first >= words) return false;
  uint64_t smask = ~0ull << (first & 63);
  for (uint32_t sw = first >> 6; sw < swords; sw++, smask = ~0ull) {
    uint64_t s = smask;
    for (int i = 0; i < n && s; i++) s &= sum[i][sw];
    while (s) {
      uint32_t w = (sw << 6) + static_cast<uint32_t>(__builtin_ctzll(s));
      if (w >= words) return false;
      uint64_t acc = (w == first) ? (~0ull << (start & 63)) : ~0ull;
      for (int i = 0; i < n && acc; i++) acc &= vec[i][w];
      if (acc) {
        *rule = (w << 6) + static_cast<uint32_t>(__builtin_ctzll(acc));
        return true;
      }
      s &= s - 1;
    }
  }
  return false;
}

inline bool name_matches(const std::string& pattern, const char* name, uint8_t len) {
  size_t pl = pattern.size();
  if (pl > 0 && pattern[pl - 1] == '+') return len >= pl - 1 && std::memcmp(pattern.data(), name, pl - 1) == 0;
  return len == pl && std::memcmp(pattern.data(), name, pl) == 0;
}

}  // namespace

void tuple_packet(uint32_t src, uint32_t dst, uint32_t sport, uint32_t dport, uint32_t proto, Decoded* d) {
  std::memset(d, 0, sizeof(*d));
  d->family = 4;
  d->present = kHasPorts;
  d->ttl = 64;
  set_tuple(src, dst, sport, dport, proto, d);
}

void set_tuple(uint32_t src, uint32_t dst, uint32_t sport, uint32_t dport, uint32_t proto, Decoded* d) {
  d->proto = d->ip_proto = static_cast<uint8_t>(proto);
  for (int i = 0; i < 4; i++) {
    d->src[i] = static_cast<uint8_t>(src >> (24 - 8 * i));
    d->dst[i] = static_cast<uint8_t>(dst >> (24 - 8 * i));
  }
  d->sport = static_cast<uint16_t>(sport);
  d->dport = static_cast<uint16_t>(dport);
}

uint32_t truncated_key(const Decoded& d) {
  if (d.family == 6) {
    // ipv6_find_hdr() failed (-p drops), -m ah drops, or both.
    bool hdr = d.nf_status != kNfOk, ah = d.nf_ah == kNfAhDrop;
    return hdr && ah ? 9 : hdr ? 8 : ah ? 6 : 0;
  }
  if (d.family == 4 && d.fragment == kFragLater && d.frag_offset == 1 && d.ip_proto == 6) return 7;
  return 0;
}

Classifier::Classifier(std::unique_ptr<Table> table, const IndexLimits& limits)
    : table_(std::move(table)), index_(new LookupIndex(*table_, limits)), limits_(new LimitState(*table_)) {
  // Which structure serves a family, from the rule count and what the vector
  // index became: when its last stage names the rule (a few loads, no AND), or
  // the vectors span one summary word (4,096 rules or fewer, where the AND
  // reads few blocks), it stays; otherwise the AND would read candidate
  // blocks that may turn out empty, and cut trees take over
  // (docs/algorithm.md has the measurements). When every kind of tree blows
  // its budget, equal cuts cut short are weighed against the vector index by
  // the miss model (index.h) and the cheaper serves.
  CutsLimits cl;
  cl.enabled = limits.cuts != IndexLimits::kCutsOff;
  cl.memory = limits.cuts_memory;
  cl.work = limits.cuts_work;
  cl.simd = limits.simd;
  cl.avx512 = limits.avx512;
  cl.group_index = limits.group_index;
  cl.address_filters = limits.address_filters;
  cl.tree = limits.tree == IndexLimits::kTreeCuts     ? CutsLimits::kCuts
            : limits.tree == IndexLimits::kTreeSplits ? CutsLimits::kSplits
                                                      : CutsLimits::kAuto;
  for (int fam : {4, 6}) {
    const FamilyIndex& fx = index_->family(fam);
    const bool direct = !fx.stages.empty() && fx.stages.back().final;
    const bool small = table_->family(fam).summary_words <= 1;
    const bool want = limits.cuts == IndexLimits::kCutsAlways || (!direct && !small);
    cl.fallback = &fx;
    if (want && table_->family(fam).dim_count > 0) cuts_[fam == 6].build(*table_, table_->family(fam), cl);
    // Few rules can be first: the vector index over them serves instead of
    // the trees (compact.h), unless a kind of tree is forced or the trees
    // were cut short (budgets given or blown: they stay as weighed).
    FamilyCuts& c = cuts_[fam == 6];
    if (limits.tree == IndexLimits::kTreeAuto && c.usable() && !c.cut_short() && !c.first_rules().empty()) {
      std::unique_ptr<CompactIndex> ci(new CompactIndex);
      if (ci->build(table_->family(fam), c.first_rules(), limits)) {
        compact_[fam == 6] = std::move(ci);
        c.drop_trees();
      }
    }
  }
  const Family& f4 = table_->family(4);
  tuple_keys_ = true;
  for (int i = 0; i < f4.dim_count; i++) {
    const uint8_t fd = f4.dims[i].field;
    const bool five =
        fd == kFieldSrc || fd == kFieldDst || fd == kFieldProto || fd == kFieldIpProto || fd == kFieldSport || fd == kFieldDport;
    if (!five || f4.dims[i].wide) tuple_keys_ = false;
  }
  simple_.resize(table_->rule_count());
  for (uint32_t i = 0; i < table_->rule_count(); i++) simple_[i] = ends_scan(table_->rule(i));
  for (const SetElementsView& v : table_->sets()) {
    NamedSet s;
    s.name = v.name;
    s.kind = v.kind;
    for (uint32_t k = 0; k < v.count; k++) {
      if (v.kind == wire::kSetKindAddress) {
        const uint8_t* e = v.elements + k * 20;
        s.addresses.add(e[0], e + 4, e[1]);
      } else {
        uint32_t lo, hi;
        std::memcpy(&lo, v.elements + k * 8, 4);
        std::memcpy(&hi, v.elements + k * 8 + 4, 4);
        s.spis.add(lo, hi);
      }
    }
    sets_.push_back(std::move(s));
  }
}

NamedSet* Classifier::find_set(const std::string& name) {
  for (NamedSet& s : sets_)
    if (s.name == name) return &s;
  return nullptr;
}

bool Classifier::interfaces_match(const ResidualRec& res, const char* name, uint8_t len) const {
  if (name == nullptr) return false;  // interface unknown: a positive condition cannot hold
  for (uint32_t k = 0; k < res.b; k++)
    if (name_matches(table_->string_at(table_->ref(res.a + k)), name, len)) return true;
  return false;
}

bool Classifier::sets_match(const ResidualRec& res, const Decoded& d) const {
  for (uint32_t k = 0; k < res.b; k++) {
    const NamedSet& s = sets_[table_->ref(res.a + k)];
    switch (res.kind) {
      case kResSetSrc:
        if (s.addresses.contains(d.family, d.src)) return true;
        break;
      case kResSetDst:
        if (s.addresses.contains(d.family, d.dst)) return true;
        break;
      case kResSetSpi:
        if ((d.present & kHasSpi) && s.spis.contains(d.spi)) return true;
        break;
      case kResSetAhSpi:
        if ((d.present & kHasAh) && s.spis.contains(d.ah_spi)) return true;
        break;
      default: break;
    }
  }
  return false;
}

// The loader put a rule's limit last: it takes a token only when everything else holds.
bool Classifier::residuals_hold(uint32_t ri, const RuleRec& r, const Decoded& d, const Meta& m, uint32_t mark,
                                Counters* counters) const {
  for (uint32_t i = 0; i < r.residual_count; i++) {
    const ResidualRec& res = table_->residual(r.residual_start + i);
    bool ok;
    switch (res.kind) {
      case kResMark: ok = (mark & res.b) == res.a; break;
      case kResIn: ok = interfaces_match(res, m.in, m.in_len); break;
      case kResOut: ok = interfaces_match(res, m.out, m.out_len); break;
      case kResLimit:
        ok = limits_->take(res.a, d, m.now_ns);
        if (!ok && counters) counters->add_over(ri);
        break;
      default: {
        // A negated set condition on an SPI still needs the SPI to be there.
        bool has = res.kind == kResSetSpi ? (d.present & kHasSpi) : res.kind == kResSetAhSpi ? (d.present & kHasAh) : true;
        if (!has) return false;
        ok = sets_match(res, d);
      }
    }
    if (res.negate) ok = !ok;
    if (!ok) return false;
  }
  return true;
}

// The verdict of rule r when it is terminal and has no residual checks (or
// the default verdict when r is past the last rule).
void Classifier::decide(const Lookup& lk, const Decoded& d, const Meta& m, Verdict* out, Counters* counters,
                        uint32_t first) const {
  out->mark_set = 0;
  out->queue = 0;
  out->mark = m.mark;
  const Family& f = *lk.family;
  const uint64_t* const* vec = lk.vec;
  const uint64_t* const* sum = lk.sum;
  const int n = lk.n;
  const uint64_t bytes = d.total_length;
  uint32_t mark = m.mark;
  uint32_t start = 0;
  const uint32_t rules = table_->rule_count();
  uint32_t r = first;
  bool known = first < rules;
  while (known || (start < rules && next_candidate(vec, sum, n, f.words, f.summary_words, start, &r))) {
    known = false;
    const RuleRec& rule = table_->rule(r);
    if (rule.residual_count && !residuals_hold(r, rule, d, m, mark, counters)) {
      start = r + 1;
      continue;
    }
    if (counters) counters->add(r, bytes);
    if (rule.flags & wire::kRuleFlagSetsMark) {
      mark = (mark & ~rule.mark_mask) ^ rule.mark_value;  // iptables --set-xmark
      out->mark_set = 1;
    }
    switch (rule.action) {
      case kActContinue: start = r + 1; continue;
      case kActSkip: start = rule.skip_to; continue;
      default:
        out->rule = static_cast<int32_t>(r);
        // accept, drop, reject and queue share their codes with the verdicts.
        out->verdict = rule.action == kActRepeat ? static_cast<uint8_t>(kVerdictRepeat) : rule.action;
        out->queue = rule.queue;
        out->mark = mark;
        return;
    }
  }
  if (counters) counters->add(rules, bytes);
  out->rule = kRuleDefault;
  out->verdict = table_->default_verdict();
  out->mark = mark;
}

}  // namespace nfsieve
