// Classifying a batch: up to Classifier::kLanes packets of one family move
// together through each field's key-to-class map (index.h), the pre-combined
// stages, and the candidate scans, so that their memory loads overlap.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "classify.h"
#include "wire.h"

namespace nfsieve {
namespace {

constexpr uint64_t kAbsentPort = wire::kAbsentKeyPort;
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
      return {0, (d.present & kHasIcmp) && right_proto ? (uint64_t(d.icmp_type) << 8 | d.icmp_code) : wire::kAbsentKeyIcmp};
    }
    case kFieldIkeVersion: return {0, (d.present & kHasIke) ? d.ike_version : wire::kAbsentKeyIkeVersion};
    case kFieldIkeExchange: return {0, (d.present & kHasIke) ? d.ike_exchange : wire::kAbsentKeyIkeExchange};
    case kFieldIkeFlags: return {0, (d.present & kHasIke) ? d.ike_flags : wire::kAbsentKeyIkeFlags};
    case kFieldNatt: return {0, d.natt};
    case kFieldFragment: return {0, d.fragment};
    case kFieldCtState: return {0, m.ctstate};
    case kFieldMalformed: return {0, d.malformed};
    case kFieldLength: return {0, d.total_length};
    case kFieldTruncated: return {0, truncated_key(d)};
    case kFieldNfProto: return {0, d.nf_status == kNfOk ? d.nf_proto : wire::kAbsentKeyNfProto};
    case kFieldIkeInitial: return {0, ike_initial_key(d)};
    case kFieldIkeCookie: return {0, ike_cookie_key(d)};
    case kFieldNftProto: return {0, d.nft_status == kNfOk ? d.nft_proto : wire::kAbsentKeyNfProto};
    case kFieldNftSport: return {0, d.nft_ports >= kNftPortsSource ? d.nft_sport : kAbsentPort};
    case kFieldNftDport: return {0, d.nft_ports == kNftPortsBoth ? d.nft_dport : kAbsentPort};
    case kFieldL4Avail: {
      bool absent = d.fragment == kFragLater || (d.family == 6 && (d.nf_status != kNfOk || d.nf_later));
      return {0, absent ? wire::kAbsentKeyL4Avail : d.nf_avail};
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

}  // namespace

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
    case kFieldSrc:
      for (int q = 0; q < k; q++) keys[q] = be32(p[which[q]].src);
      break;
    case kFieldDst:
      for (int q = 0; q < k; q++) keys[q] = be32(p[which[q]].dst);
      break;
    case kFieldProto:
      for (int q = 0; q < k; q++) keys[q] = p[which[q]].proto;
      break;
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

// One field's keys for k packets clamped into box space, written as box
// field i: the 5-tuple's fields without the detour through 64-bit keys.
void cut_keys(uint8_t field, const Decoded* p, const Meta* m, size_t stride, const int* which, int k, uint32_t clamp, int i,
              uint32_t (*keys)[kCutDims]) {
  auto port = [](const Decoded& d, uint16_t v) { return (d.present & kHasPorts) ? uint32_t(v) : uint32_t(kAbsentPort); };
  switch (field) {
    case kFieldSrc:
      for (int q = 0; q < k; q++) keys[q][i] = std::min(be32(p[which[q]].src), clamp);
      return;
    case kFieldDst:
      for (int q = 0; q < k; q++) keys[q][i] = std::min(be32(p[which[q]].dst), clamp);
      return;
    case kFieldProto:
      for (int q = 0; q < k; q++) keys[q][i] = std::min(uint32_t(p[which[q]].proto), clamp);
      return;
    case kFieldSport:
      for (int q = 0; q < k; q++) keys[q][i] = std::min(port(p[which[q]], p[which[q]].sport), clamp);
      return;
    case kFieldDport:
      for (int q = 0; q < k; q++) keys[q][i] = std::min(port(p[which[q]], p[which[q]].dport), clamp);
      return;
    default: {
      uint64_t raw[Classifier::kLanes];
      narrow_keys(field, p, m, stride, which, k, raw);
      for (int q = 0; q < k; q++) keys[q][i] = static_cast<uint32_t>(raw[q] < clamp ? raw[q] : clamp);
    }
  }
}

// The classes of k narrow keys of one table dimension: through the index's
// map, or the table's boundaries where it has none.
inline void key_classes(const Dim& dim, const FieldMap& map, const uint64_t* keys, int k, uint32_t* cls) {
  if (map.kind == FieldMap::kSearch) {
    uint32_t idx[Classifier::kLanes];
    intervals_narrow(dim, keys, k, idx);
    for (int q = 0; q < k; q++) cls[q] = dim.classes[idx[q]];
  } else {
    mapped_classes(
        dim, map, k, [keys](int q) { return keys[q]; }, cls);
  }
}

}  // namespace

// The verdict of rule r (the default when r is the rule count), here so that the lanes inline it.
inline void Classifier::finish(uint32_t r, const Decoded& d, const Meta& m, Verdict* out, Counters* counters) const {
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
  if (rule.flags & wire::kRuleFlagSetsMark) {
    mark = (mark & ~rule.mark_mask) ^ rule.mark_value;
    out->mark_set = 1;
  }
  out->rule = static_cast<int32_t>(r);
  out->verdict = rule.action == kActRepeat ? static_cast<uint8_t>(kVerdictRepeat) : rule.action;
  out->queue = rule.queue;
  out->mark = mark;
}

void Classifier::classify(const Decoded& d, const Meta& m, Verdict* out, Counters* counters) const {
  classify_batch(&d, 1, &m, 0, out, counters);
}

void Classifier::classify_batch(const Decoded* packets, size_t count, const Meta* metas, size_t meta_stride, Verdict* out,
                                Counters* counters) const {
  if (limits_->count()) {
    // Rate limits: packets must take tokens in batch order, so a lane group
    // is a run of consecutive packets of one family (the groups below put a
    // group's IPv4 packets before its IPv6 ones).
    for (size_t base = 0; base < count;) {
      const Decoded* p = packets + base;
      const Meta* m = metas + base * meta_stride;
      const uint8_t fam = p[0].family;
      if (fam != 4 && fam != 6) {
        not_ip(m[0], &out[base]);
        base++;
        continue;
      }
      int which[kLanes], k = 0;
      while (k < kLanes && base + k < count && p[k].family == fam) {
        which[k] = k;
        k++;
      }
      // The compact index and cut trees finish lanes whose rule takes no
      // token; the others go on to lanes() in their batch order.
      lanes_family(p, m, meta_stride, k, fam, which, out + base, counters);
      base += k;
    }
    return;
  }
  for (size_t base = 0; base < count; base += kLanes) {
    const int n = static_cast<int>(count - base < static_cast<size_t>(kLanes) ? count - base : kLanes);
    const Decoded* p = packets + base;
    const Meta* m = metas + base * meta_stride;
    int which4[kLanes], which6[kLanes], k4 = 0, k6 = 0;
    for (int j = 0; j < n; j++) {
      if (p[j].family == 4)
        which4[k4++] = j;
      else if (p[j].family == 6)
        which6[k6++] = j;
      else
        not_ip(m[j * meta_stride], &out[base + j]);
    }
    if (k4) lanes_family(p, m, meta_stride, k4, 4, which4, out + base, counters);
    if (k6) lanes_family(p, m, meta_stride, k6, 6, which6, out + base, counters);
  }
}

// Up to kLanes packets of one family through the structure that serves it.
inline void Classifier::lanes_family(const Decoded* p, const Meta* m, size_t stride, int k, int fam, const int* which,
                                     Verdict* out, Counters* counters) const {
  if (compact_[fam == 6])
    lanes_compact(p, m, stride, k, fam, which, out, counters);
  else if (cuts_[fam == 6].usable())
    lanes_cuts(p, m, stride, k, fam, which, out, counters);
  else
    lanes(p, m, stride, k, fam, which, out, counters);
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
    if (dim.wide) {
      for (int q = 0; q < k; q++)
        cls[i][q] = dim.classes[interval_wide(dim, packet_key(dim.field, true, p[which[q]], m[which[q] * stride]))];
    } else {
      uint64_t keys[kLanes];
      narrow_keys(dim.field, p, m, stride, which, k, keys);
      key_classes(dim, fx.maps[i], keys, k, cls[i]);
    }
  }
  uint32_t first[kLanes];
  Lookup lk[kLanes];
  const uint32_t rules = table_->rule_count();
  candidates(f, fx, rules, simple_.data(), cls, k, first, lk);
  for (int q = 0; q < k; q++) {
    const uint32_t r = first[q];
    if (r >= rules || simple_[r])
      finish(r, p[which[q]], m[which[q] * stride], &out[which[q]], counters);
    else
      decide(lk[q], p[which[q]], m[which[q] * stride], &out[which[q]], counters, r);
  }
}

// The first candidate of k lanes (the rule count when none) from each table
// dimension's class, cls[i][q]: the pre-combined stages (their classes go to
// cls[dims + s]), then the final stage's rule or the interleaved AND scans.
// lk[q] holds the vectors decide() scans on with when that rule does not end
// the scan.
__attribute__((always_inline)) inline void Classifier::candidates(const Family& f, const FamilyIndex& fx, uint32_t rules,
                                                                  const uint8_t* simple, uint32_t (*cls)[kLanes], int k,
                                                                  uint32_t* first, Lookup* lk) const {
  const int F = f.dim_count;
  const int stages = static_cast<int>(fx.stages.size());
  stage_classes(fx, F, cls, k);
  auto add = [&](Lookup& l, int op, int q) {
    const Operand& o = fx.operands[op];
    l.vec[l.n] = o.vectors + size_t(cls[op][q]) * f.words;
    l.sum[l.n++] = o.summaries + size_t(cls[op][q]) * f.summary_words;
  };
  auto base = [&](Lookup& l) {
    l.vec[l.n] = f.base;
    l.sum[l.n++] = f.base_summary;
  };
  if (stages > 0 && fx.stages.back().final) {
    for (int q = 0; q < k; q++) {
      first[q] = cls[F + stages - 1][q];
      if (!simple || first[q] >= rules || simple[first[q]]) continue;
      // A rule with residual checks or a non-terminal action: decide() scans
      // on from it, on the last stage's two operands, whose vectors index.cc
      // keeps whenever the table has such a rule.
      lk[q].family = &f;
      lk[q].n = 0;
      add(lk[q], fx.stages.back().a, q);
      add(lk[q], fx.stages.back().b, q);
      base(lk[q]);
    }
    return;
  }
  for (int q = 0; q < k; q++) {
    lk[q].family = &f;
    lk[q].n = 0;
    for (int op : fx.roots) add(lk[q], op, q);
    if (fx.base_root) base(lk[q]);
  }
  and_scans(f, rules, lk, k, first);
}

// The first rule set in every vector of each lane's Lookup, the lanes' scans
// interleaved so that their loads (vectors scattered over megabytes) overlap.
void Classifier::and_scans(const Family& f, uint32_t rules, const Lookup* lk, int k, uint32_t* first) const {
  const uint32_t swords = f.summary_words;
  uint32_t sw[kLanes];
  uint64_t bits[kLanes];
  int live[kLanes], nl = 0;
  for (int q = 0; q < k; q++) {
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
}

// Up to kLanes packets of one family through its cut trees: each packet's
// keys clamped into box space, the trees walked in lockstep (cuts.h), then the
// verdict of the first candidate, or the full scan when that rule has residual
// checks or does not end the scan.
void Classifier::lanes_cuts(const Decoded* p, const Meta* m, size_t stride, int k, int fam, const int* which, Verdict* out,
                            Counters* counters) const {
  const Family& f = table_->family(fam);
  const FamilyIndex& fx = index_->family(fam);
  const FamilyCuts& cuts = cuts_[fam == 6];
  alignas(32) uint32_t keys[kLanes][kCutDims] = {};
  for (int i = 0; i < cuts.dims(); i++) cut_keys(f.dims[cuts.dim(i)].field, p, m, stride, which, k, cuts.clamp(i), i, keys);
  // A rule whose conditions are not all boxes: its bit in every field's vector.
  auto verify = [&](int q, uint32_t r) {
    const Decoded& d = p[which[q]];
    const Meta& mq = m[which[q] * stride];
    for (int i = 0; i < f.dim_count; i++) {
      const Dim& dim = f.dims[i];
      const Key key = packet_key(dim.field, dim.wide, d, mq);
      const uint32_t c = dim.wide ? dim.classes[interval_wide(dim, key)] : narrow_class(dim, fx.maps[i], key.lo);
      if (!((dim.vectors[size_t(c) * f.words + (r >> 6)] >> (r & 63)) & 1)) return false;
    }
    return true;
  };
  uint32_t first[kLanes];
  cuts.first(keys, k, table_->rule_count(), first, verify);
  finish_lanes(p, m, stride, k, fam, which, first, out, counters);
}

// The verdicts of k lanes whose first candidates are known: finished here
// when that rule ends the scan with nothing to check, otherwise (residual
// checks, non-terminal actions) through lanes() in their batch order.
void Classifier::finish_lanes(const Decoded* p, const Meta* m, size_t stride, int k, int fam, const int* which,
                              const uint32_t* first, Verdict* out, Counters* counters) const {
  const uint32_t rules = table_->rule_count();
  int slow[kLanes], ns = 0;
  for (int q = 0; q < k; q++) {
    const uint32_t r = first[q];
    if (r >= rules || simple_[r])
      finish(r, p[which[q]], m[which[q] * stride], &out[which[q]], counters);
    else
      slow[ns++] = which[q];
  }
  if (ns) lanes(p, m, stride, ns, fam, slow, out, counters);
}

// Up to kLanes packets of one family through the compact index (compact.h):
// each dimension's key to its class in the compact family, its stages, and
// the bit found mapped back to the table's rule; lanes whose rule needs the
// full scan go on to lanes().
void Classifier::lanes_compact(const Decoded* p, const Meta* m, size_t stride, int k, int fam, const int* which, Verdict* out,
                               Counters* counters) const {
  const Family& f = table_->family(fam);
  uint64_t keys[kMaxDims][kLanes];
  for (int i = 0; i < f.dim_count; i++) narrow_keys(f.dims[i].field, p, m, stride, which, k, keys[i]);
  uint32_t first[kLanes];
  compact_candidates(*compact_[fam == 6], keys, k, first);
  finish_lanes(p, m, stride, k, fam, which, first, out, counters);
}

// The first candidate (a table rule, or the rule count) of k lanes from
// their keys, keys[i][q] for table dimension i, through the compact index.
void Classifier::compact_candidates(const CompactIndex& ci, const uint64_t (*keys)[kLanes], int k, uint32_t* first) const {
  const Family& cf = ci.family();
  const FamilyIndex& cfx = ci.index();
  uint32_t cls[2 * kMaxDims][kLanes];
  for (int i = 0; i < cf.dim_count; i++) key_classes(cf.dims[i], cfx.maps[i], keys[i], k, cls[i]);
  Lookup lk[kLanes];
  candidates(cf, cfx, ci.size(), nullptr, cls, k, first, lk);
  const uint32_t rules = table_->rule_count();
  for (int q = 0; q < k; q++) first[q] = first[q] < ci.size() ? ci.rule(first[q]) : rules;
}

// ClassBench-style 5-tuples. A record tuple_packet() makes holds the ports
// as 16 bits and the protocol as 8, with ports present: the keys below are
// the ones packet_key() reads from it, without the record.
namespace {

// Tuples one call takes: kLanes through the vector index, lanes() through the trees.
constexpr int kTupleLanes = std::max(Classifier::kLanes, FamilyCuts::kMaxLanes);
static_assert(Classifier::kLanes <= FamilyCuts::kMaxLanes, "the packet path walks kLanes packets through the trees");

// The five fields of k tuples as columns: the keys packet_key() reads from
// their records (ports 16 bits, the protocol 8). One pass over the tuples
// (strided loops per field are what GCC's -O3 vectorizer turned into slow
// code for eight lanes).
struct TupleColumns {
  uint32_t col[5][kTupleLanes];
  TupleColumns(const uint32_t* t, int k) {
    for (int q = 0; q < k; q++, t += 5) {
      col[0][q] = t[0];
      col[1][q] = t[1];
      col[2][q] = t[2] & width(2);
      col[3][q] = t[3] & width(3);
      col[4][q] = t[4] & width(4);
    }
  }
  // The bits of column c a key reads: ports 16, the protocol 8.
  static constexpr uint32_t width(int c) { return c < 2 ? 0xffffffffu : c < 4 ? 0xffffu : 0xffu; }
  // The column of a table field (one of the five).
  static int of(uint8_t field) {
    switch (field) {
      case kFieldSrc: return 0;
      case kFieldDst: return 1;
      case kFieldSport: return 2;
      case kFieldDport: return 3;
      default: return 4;  // kFieldProto, kFieldIpProto
    }
  }
};

// How the cut trees' keys come from a tuple's five words: box field i is
// word perm[i] under mask[i] (its column's width), clamped to clamp[i];
// fields the trees do not cut read as 0 (mask 0).
struct TupleKeyPlan {
  alignas(32) uint32_t perm[kCutDims] = {0}, mask[kCutDims] = {0}, clamp[kCutDims] = {0};
  TupleKeyPlan(const Family& f, const FamilyCuts& cuts) {
    for (int i = 0; i < cuts.dims(); i++) {
      const int col = TupleColumns::of(f.dims[cuts.dim(i)].field);
      perm[i] = static_cast<uint32_t>(col);
      mask[i] = TupleColumns::width(col);
      clamp[i] = cuts.clamp(i);
    }
  }
  // Column col of tuple q, as TupleColumns holds it.
  static uint32_t word(const uint32_t* t, int q, int col) { return t[5 * q + col] & TupleColumns::width(col); }
};

// Each of k tuples' keys for the cut trees: one load of its five words (and
// the three after them, unused; the last tuple's load is masked so as not
// to read past the batch), a permute into the box fields, mask and clamp.
// Against the columns and a loop a field: about 25 instructions a packet
// fewer, acl5_10k ClassBench-style 16.0 -> 15.0 ns (docs/algorithm.md).
__attribute__((target("avx2"))) void tuple_keys_avx2(const uint32_t* t, int k, const TupleKeyPlan& p,
                                                     uint32_t (*keys)[kCutDims]) {
  const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.perm));
  const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.mask));
  const __m256i clamp = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.clamp));
  const __m256i five = _mm256_setr_epi32(-1, -1, -1, -1, -1, 0, 0, 0);
  for (int q = 0; q < k; q++, t += 5) {
    const __m256i w = q + 1 < k ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t))
                                : _mm256_maskload_epi32(reinterpret_cast<const int*>(t), five);
    const __m256i key = _mm256_and_si256(_mm256_permutevar8x32_epi32(w, perm), mask);
    _mm256_store_si256(reinterpret_cast<__m256i*>(keys[q]), _mm256_min_epu32(key, clamp));
  }
}

void tuple_keys_scalar(const uint32_t* t, int k, const TupleKeyPlan& p, uint32_t (*keys)[kCutDims]) {
  for (int q = 0; q < k; q++, t += 5)
    for (int i = 0; i < kCutDims; i++) keys[q][i] = std::min(t[p.perm[i]] & p.mask[i], p.clamp[i]);
}

}  // namespace

void Classifier::classify_tuples(const uint32_t* t, size_t count, int32_t* out) const {
  if (!tuple_keys_) return tuples_through_records(t, count, out);
  const uint32_t rules = table_->rule_count();
  // The trees walk up to FamilyCuts::lanes() tuples in lockstep, the compact and vector indexes kLanes.
  const size_t lanes = !compact_[0] && cuts_[0].usable() ? static_cast<size_t>(cuts_[0].lanes()) : kLanes;
  for (size_t base = 0; base < count; base += lanes) {
    const int k = static_cast<int>(std::min<size_t>(lanes, count - base));
    const uint32_t* tk = t + 5 * base;
    uint32_t first[kTupleLanes];
    tuple_candidates(tk, k, first);
    for (int q = 0; q < k; q++) {
      const uint32_t r = first[q];
      if (r >= rules)
        out[base + q] = kRuleDefault;
      else if (simple_[r])
        out[base + q] = static_cast<int32_t>(r);
      else  // residual checks or a non-terminal action: the full scan on a record
        tuples_through_records(tk + 5 * q, 1, out + base + q);
    }
  }
}

void Classifier::tuple_candidates(const uint32_t* t, int k, uint32_t* first) const {
  const Family& f = table_->family(4);
  const FamilyIndex& fx = index_->family(4);
  const FamilyCuts& cuts = cuts_[0];
  if (!compact_[0] && cuts.usable()) {
    const TupleKeyPlan plan(f, cuts);
    alignas(32) uint32_t keys[kTupleLanes][kCutDims];
    if (cuts.avx2())
      tuple_keys_avx2(t, k, plan, keys);
    else
      tuple_keys_scalar(t, k, plan, keys);
    auto verify = [&](int q, uint32_t r) {
      for (int i = 0; i < f.dim_count; i++) {
        const Dim& dim = f.dims[i];
        const uint32_t c = narrow_class(dim, fx.maps[i], plan.word(t, q, TupleColumns::of(dim.field)));
        if (!((dim.vectors[size_t(c) * f.words + (r >> 6)] >> (r & 63)) & 1)) return false;
      }
      return true;
    };
    cuts.first(keys, k, table_->rule_count(), first, verify);
    return;
  }
  const TupleColumns tc(t, k);
  // The compact index or the table's vector index: one key per dimension.
  uint64_t keys[kMaxDims][kLanes];
  for (int i = 0; i < f.dim_count; i++) {
    const uint32_t* c = tc.col[TupleColumns::of(f.dims[i].field)];
    for (int q = 0; q < k; q++) keys[i][q] = c[q];
  }
  if (compact_[0]) return compact_candidates(*compact_[0], keys, k, first);
  uint32_t cls[2 * kMaxDims][kLanes];
  for (int i = 0; i < f.dim_count; i++) key_classes(f.dims[i], fx.maps[i], keys[i], k, cls[i]);
  Lookup lk[kLanes];
  candidates(f, fx, table_->rule_count(), simple_.data(), cls, k, first, lk);
}

void Classifier::tuples_through_records(const uint32_t* t, size_t count, int32_t* out) const {
  // In chunks small enough that the records stay in the L1 cache between being written and being classified.
  constexpr size_t kChunk = 64;
  Decoded d[kChunk];
  Verdict v[kChunk];
  const Meta m;
  for (size_t at = 0; at < count; at += kChunk) {
    const size_t len = std::min(kChunk, count - at);
    for (size_t i = 0; i < len; i++) {
      const uint32_t* t5 = t + 5 * (at + i);
      tuple_packet(t5[0], t5[1], t5[2], t5[3], t5[4], &d[i]);
    }
    classify_batch(d, len, &m, 0, v, nullptr);
    for (size_t i = 0; i < len; i++) out[at + i] = v[i].rule;
  }
}

}  // namespace nfsieve
