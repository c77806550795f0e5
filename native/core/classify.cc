// Evaluation of a decision table (see src/compile/build.ts for the layout's
// rationale): per field, a binary search maps the packet's key to a class
// vector; the AND of all vectors and the family's base vector has one bit per
// rule whose interval conditions hold. Candidates are taken lowest bit first,
// their residual checks applied, and non-terminal actions (count, mark and
// continue, skip) resume the scan further on.
#include "classify.h"

#include <cstring>

namespace nfsieve {
namespace {

constexpr uint64_t kAbsentPort = 65536;
constexpr uint64_t kAbsentSpi = 1ull << 32;

struct Key {
  uint64_t hi, lo;  // lo only for narrow keys
};

inline uint32_t be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}

inline Key address_key(const uint8_t* a, bool wide) {
  if (!wide) return {0, be32(a)};
  return {static_cast<uint64_t>(be32(a)) << 32 | be32(a + 4), static_cast<uint64_t>(be32(a + 8)) << 32 | be32(a + 12)};
}

__attribute__((always_inline)) inline Key packet_key(uint8_t field, bool wide, const Decoded& d, const Meta& m) {
  switch (field) {
    case kFieldSrc: return address_key(d.src, wide);
    case kFieldDst: return address_key(d.dst, wide);
    case kFieldProto: return {0, d.proto};
    case kFieldIpProto: return {0, d.ip_proto};
    case kFieldSport: return {0, (d.present & kHasPorts) ? d.sport : kAbsentPort};
    case kFieldDport: return {0, (d.present & kHasPorts) ? d.dport : kAbsentPort};
    case kFieldSpi: return {0, (d.present & kHasSpi) ? d.spi : kAbsentSpi};
    case kFieldAhSpi: return {0, (d.present & kHasAh) ? d.ah_spi : kAbsentSpi};
    case kFieldIcmp: {
      bool right_proto = d.proto == (d.family == 4 ? 1 : 58);
      return {0, (d.present & kHasIcmp) && right_proto ? (uint64_t(d.icmp_type) << 8 | d.icmp_code) : 65536};
    }
    case kFieldIkeVersion: return {0, (d.present & kHasIke) ? d.ike_version : 16u};
    case kFieldIkeExchange: return {0, (d.present & kHasIke) ? d.ike_exchange : 256u};
    case kFieldIkeFlags: return {0, (d.present & kHasIke) ? d.ike_flags : 256u};
    case kFieldNatt: return {0, d.natt};
    case kFieldFragment: return {0, d.fragment};
    case kFieldCtState: return {0, m.ctstate};
    case kFieldMalformed: return {0, d.malformed};
    case kFieldLength: return {0, d.total_length};
    case kFieldTruncated: return {0, truncated_key(d)};
    case kFieldNfProto: return {0, d.nf_status == kNfOk ? d.nf_proto : 256u};
    case kFieldL4Avail: {
      bool absent = d.fragment == kFragLater || (d.family == 6 && (d.nf_status != kNfOk || d.nf_later));
      return {0, absent ? 65536u : d.nf_avail};
    }
    default: return {0, 0};
  }
}

// Number of boundaries <= a 128-bit key: the index of its elementary interval
// (narrow keys go through the index's maps or intervals_narrow()).
// Branch-free halving (the compiler emits conditional moves), so its cost is
// log2(B) dependent loads and no mispredictions.
__attribute__((always_inline)) inline uint32_t interval_wide(const Dim& dim, Key k) {
  uint32_t n = dim.boundary_count;
  if (n == 0) return 0;
  const uint64_t* b = dim.boundaries;
  uint32_t lo = 0;
  while (n > 1) {
    uint32_t half = n >> 1;
    uint64_t bh = b[2 * (lo + half)], bl = b[2 * (lo + half) + 1];
    bool le = bh < k.hi || (bh == k.hi && bl <= k.lo);
    lo = le ? lo + half : lo;
    n -= half;
  }
  uint64_t bh = b[2 * lo], bl = b[2 * lo + 1];
  return lo + ((bh < k.hi || (bh == k.hi && bl <= k.lo)) ? 1 : 0);
}

// The lowest rule index >= start whose bit is set in every vector. Summary
// words (one bit per 64-rule block) are ANDed first, so only blocks where all
// fields have some candidate are read.
inline bool next_candidate(const uint64_t* const* vec, const uint64_t* const* sum, int n, uint32_t words,
                           uint32_t swords, uint32_t start, uint32_t* rule) {
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
    if (d.nf_status != kNfOk) return 8;  // ipv6_find_hdr() failed
    return d.malformed == kAhTruncated ? 6 : 0;
  }
  if (d.family == 4 && d.fragment == kFragLater && d.frag_offset == 1 && d.ip_proto == 6) return 7;
  return 0;
}

Classifier::Classifier(std::unique_ptr<Table> table, const IndexLimits& limits)
    : table_(std::move(table)), index_(new LookupIndex(*table_, limits)) {
  simple_.resize(table_->rule_count());
  for (uint32_t i = 0; i < table_->rule_count(); i++) {
    const RuleRec& r = table_->rule(i);
    simple_[i] = r.residual_count == 0 && r.action != kActContinue && r.action != kActSkip;
  }
  for (const SetElementsView& v : table_->sets()) {
    NamedSet s;
    s.name = v.name;
    s.kind = v.kind;
    for (uint32_t k = 0; k < v.count; k++) {
      if (v.kind == 1) {
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
      case kResSetSrc: if (s.addresses.contains(d.family, d.src)) return true; break;
      case kResSetDst: if (s.addresses.contains(d.family, d.dst)) return true; break;
      case kResSetSpi: if ((d.present & kHasSpi) && s.spis.contains(d.spi)) return true; break;
      case kResSetAhSpi: if ((d.present & kHasAh) && s.spis.contains(d.ah_spi)) return true; break;
      default: break;
    }
  }
  return false;
}

bool Classifier::residuals_hold(const RuleRec& r, const Decoded& d, const Meta& m, uint32_t mark) const {
  for (uint32_t i = 0; i < r.residual_count; i++) {
    const ResidualRec& res = table_->residual(r.residual_start + i);
    bool ok;
    switch (res.kind) {
      case kResMark: ok = (mark & res.b) == res.a; break;
      case kResIn: ok = interfaces_match(res, m.in, m.in_len); break;
      case kResOut: ok = interfaces_match(res, m.out, m.out_len); break;
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

namespace {

inline bool is_ip(const Decoded& d) { return d.family == 4 || d.family == 6; }

inline void not_ip(const Meta& m, Verdict* out) {
  out->rule = kRuleNotIp;
  out->verdict = kVerdictNone;
  out->mark_set = 0;
  out->queue = 0;
  out->mark = m.mark;
}

// Lockstep branch-free search of `lanes` narrow keys in one boundary array:
// every lane halves the same range length, so the loop is shared and the
// loads of different lanes are independent.
inline void intervals_narrow(const Dim& dim, const uint64_t* keys, int lanes, uint32_t* idx) {
  const uint64_t* b = dim.boundaries;
  uint32_t n = dim.boundary_count;
  if (n == 0) {
    for (int j = 0; j < lanes; j++) idx[j] = 0;
    return;
  }
  const uint64_t* p[Classifier::kLanes];
  for (int j = 0; j < lanes; j++) p[j] = b;
  while (n > 1) {
    uint32_t half = n >> 1;
    for (int j = 0; j < lanes; j++) p[j] = (p[j][half] <= keys[j]) ? p[j] + half : p[j];
    n -= half;
  }
  for (int j = 0; j < lanes; j++) idx[j] = static_cast<uint32_t>(p[j] - b) + (*p[j] <= keys[j] ? 1 : 0);
}

}  // namespace

namespace {

// The narrow key of one field for k packets: the switch once, not per packet.
void narrow_keys(uint8_t field, const Decoded* p, const Meta* m, size_t stride, const int* which, int k, uint64_t* keys) {
  switch (field) {
    case kFieldSrc: for (int q = 0; q < k; q++) keys[q] = be32(p[which[q]].src); break;
    case kFieldDst: for (int q = 0; q < k; q++) keys[q] = be32(p[which[q]].dst); break;
    case kFieldProto: for (int q = 0; q < k; q++) keys[q] = p[which[q]].proto; break;
    case kFieldSport:
      for (int q = 0; q < k; q++) keys[q] = (p[which[q]].present & kHasPorts) ? p[which[q]].sport : kAbsentPort;
      break;
    case kFieldDport:
      for (int q = 0; q < k; q++) keys[q] = (p[which[q]].present & kHasPorts) ? p[which[q]].dport : kAbsentPort;
      break;
    default:
      for (int q = 0; q < k; q++) keys[q] = packet_key(field, false, p[which[q]], m[which[q] * stride]).lo;
  }
}

// The class of each key through a direct array or a trie (see index.h).
void mapped_classes(const Dim& dim, const FieldMap& map, const uint64_t* keys, int k, uint32_t* out) {
  if (map.kind == FieldMap::kDirect) {
    for (int q = 0; q < k; q++) out[q] = map.direct_class(keys[q]);
    return;
  }
  for (int q = 0; q < k; q++)
    out[q] = keys[q] <= 0xffffffffu ? map.trie_class(static_cast<uint32_t>(keys[q])) : narrow_class(dim, map, keys[q]);
}

}  // namespace

void Classifier::classify(const Decoded& d, const Meta& m, Verdict* out, Counters* counters) const {
  classify_batch(&d, 1, &m, 0, out, counters);
}

void Classifier::classify_batch(const Decoded* packets, size_t count, const Meta* metas, size_t meta_stride, Verdict* out,
                                Counters* counters) const {
  for (size_t base = 0; base < count; base += kLanes) {
    const int n = static_cast<int>(count - base < static_cast<size_t>(kLanes) ? count - base : kLanes);
    const Decoded* p = packets + base;
    const Meta* m = metas + base * meta_stride;
    int which4[kLanes], which6[kLanes], k4 = 0, k6 = 0;
    for (int j = 0; j < n; j++) {
      if (p[j].family == 4) which4[k4++] = j;
      else if (p[j].family == 6) which6[k6++] = j;
      else not_ip(m[j * meta_stride], &out[base + j]);
    }
    if (k4) lanes(p, m, meta_stride, k4, 4, which4, out + base, counters);
    if (k6) lanes(p, m, meta_stride, k6, 6, which6, out + base, counters);
  }
}

// Up to kLanes packets of one family: each field's key to its class, the
// pre-combined stages, then the rule (final stage) or the AND of what remains.
void Classifier::lanes(const Decoded* p, const Meta* m, size_t stride, int k, int fam, const int* which, Verdict* out,
                       Counters* counters) const {
  const Family& f = table_->family(fam);
  const FamilyIndex& fx = index_->family(fam);
  uint32_t cls[2 * kMaxDims][kLanes];
  for (int i = 0; i < f.dim_count; i++) {
    const Dim& dim = f.dims[i];
    const FieldMap& map = fx.maps[i];
    if (dim.wide) {
      for (int q = 0; q < k; q++)
        cls[i][q] = dim.classes[interval_wide(dim, packet_key(dim.field, true, p[which[q]], m[which[q] * stride]))];
    } else {
      uint64_t keys[kLanes];
      narrow_keys(dim.field, p, m, stride, which, k, keys);
      if (map.kind == FieldMap::kSearch) {
        uint32_t idx[kLanes];
        intervals_narrow(dim, keys, k, idx);
        for (int q = 0; q < k; q++) cls[i][q] = dim.classes[idx[q]];
      } else {
        mapped_classes(dim, map, keys, k, cls[i]);
      }
    }
  }
  const int F = f.dim_count;
  const int stages = static_cast<int>(fx.stages.size());
  for (int s = 0; s < stages; s++) {
    const Stage& st = fx.stages[s];
    if (st.map16.empty()) {
      for (int q = 0; q < k; q++) cls[F + s][q] = st.map[size_t(cls[st.a][q]) * st.b_count + cls[st.b][q]];
    } else {
      for (int q = 0; q < k; q++) cls[F + s][q] = st.map16[size_t(cls[st.a][q]) * st.b_count + cls[st.b][q]];
    }
  }
  const bool final = stages > 0 && fx.stages.back().final;
  Lookup lk[kLanes];
  int pending[kLanes], np = 0;
  for (int q = 0; q < k; q++) {
    Lookup& l = lk[q];
    l.family = &f;
    l.n = 0;
    auto add = [&](int op) {
      const Operand& o = fx.operands[op];
      l.vec[l.n] = o.vectors + size_t(cls[op][q]) * f.words;
      l.sum[l.n++] = o.summaries + size_t(cls[op][q]) * f.summary_words;
    };
    if (final) {
      uint32_t r = cls[F + stages - 1][q];
      if (r >= table_->rule_count() || simple_[r]) {
        finish(r, p[which[q]], m[which[q] * stride], &out[which[q]], counters);
        continue;
      }
      // A rule with residual checks or a non-terminal action: scan on from it.
      add(fx.stages.back().a);
      add(fx.stages.back().b);
    } else {
      for (int op : fx.roots) add(op);
    }
    if (final || fx.base_root) {
      l.vec[l.n] = f.base;
      l.sum[l.n++] = f.base_summary;
    }
    pending[np++] = q;
  }
  // The first candidate of every lane, the lanes' scans interleaved so that
  // their loads (vectors scattered over megabytes) overlap.
  const uint32_t rules = table_->rule_count(), swords = f.summary_words;
  uint32_t first[kLanes], sw[kLanes];
  uint64_t bits[kLanes];
  int live[kLanes], nl = 0;
  for (int i = 0; i < np; i++) {
    const int q = pending[i];
    const Lookup& l = lk[q];
    first[q] = rules;
    sw[q] = 0;
    uint64_t b = swords ? ~0ull : 0;
    for (int v = 0; v < l.n && b; v++) b &= l.sum[v][0];
    bits[q] = b;
    live[nl++] = q;
  }
  while (nl > 0) {
    int still = 0;
    for (int i = 0; i < nl; i++) {
      const int q = live[i];
      const Lookup& l = lk[q];
      while (bits[q] == 0 && ++sw[q] < swords) {
        uint64_t b = ~0ull;
        for (int v = 0; v < l.n && b; v++) b &= l.sum[v][sw[q]];
        bits[q] = b;
      }
      if (bits[q] == 0) continue;  // no candidate: the default verdict
      const uint32_t w = (sw[q] << 6) + static_cast<uint32_t>(__builtin_ctzll(bits[q]));
      uint64_t acc = ~0ull;
      for (int v = 0; v < l.n && acc; v++) acc &= l.vec[v][w];
      if (acc) {
        first[q] = (w << 6) + static_cast<uint32_t>(__builtin_ctzll(acc));
        continue;
      }
      bits[q] &= bits[q] - 1;
      live[still++] = q;
    }
    nl = still;
  }
  for (int i = 0; i < np; i++) {
    const int q = pending[i];
    const uint32_t r = first[q];
    if (r >= rules || simple_[r]) finish(r, p[which[q]], m[which[q] * stride], &out[which[q]], counters);
    else decide(lk[q], p[which[q]], m[which[q] * stride], &out[which[q]], counters);
  }
}

// The verdict of rule r when it is terminal and has no residual checks (or
// the default verdict when r is past the last rule).
void Classifier::finish(uint32_t r, const Decoded& d, const Meta& m, Verdict* out, Counters* counters) const {
  out->mark_set = 0;
  out->queue = 0;
  const uint32_t rules = table_->rule_count();
  if (r >= rules) {
    if (counters) counters->add(rules, d.total_length);
    out->rule = kRuleDefault;
    out->verdict = table_->default_verdict();
    out->mark = m.mark;
    return;
  }
  const RuleRec& rule = table_->rule(r);
  if (counters) counters->add(r, d.total_length);
  uint32_t mark = m.mark;
  if (rule.flags & 1) {
    mark = (mark & ~rule.mark_mask) ^ rule.mark_value;
    out->mark_set = 1;
  }
  out->rule = static_cast<int32_t>(r);
  out->verdict = rule.action == kActRepeat ? static_cast<uint8_t>(kVerdictRepeat) : rule.action;
  out->queue = rule.queue;
  out->mark = mark;
}

void Classifier::decide(const Lookup& lk, const Decoded& d, const Meta& m, Verdict* out, Counters* counters) const {
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
  uint32_t r;
  while (start < rules && next_candidate(vec, sum, n, f.words, f.summary_words, start, &r)) {
    const RuleRec& rule = table_->rule(r);
    if (rule.residual_count && !residuals_hold(rule, d, m, mark)) {
      start = r + 1;
      continue;
    }
    if (counters) counters->add(r, bytes);
    if (rule.flags & 1) {
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
