// Table loading: every check the evaluator relies on, made once.
#include "table.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "limit.h"
#include "reserve.h"
#include "wire.h"

namespace nfsieve {

namespace {

// Slicing-by-8: eight table lookups per eight bytes. `c` is the running
// register (initially all ones, inverted at the end by the caller).
uint32_t crc32_slicing(uint32_t c, const uint8_t* data, size_t size) {
  static uint32_t t[8][256];
  static bool ready = [] {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
      for (int k = 1; k < 8; k++) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    return true;
  }();
  (void)ready;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const uint8_t* p = data + i;
    uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    uint32_t hi = uint32_t(p[4]) | uint32_t(p[5]) << 8 | uint32_t(p[6]) << 16 | uint32_t(p[7]) << 24;
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^ t[3][hi & 0xff] ^
        t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
  }
  for (; i < size; i++) c = t[0][(c ^ data[i]) & 0xff] ^ (c >> 8);
  return c;
}

__attribute__((target("pclmul,sse4.1"))) inline __m128i load(const uint8_t* q) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
}

// x's low half times k's low plus x's high half times k's high, plus the next block.
__attribute__((target("pclmul,sse4.1"))) inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

// The same register update with carry-less multiplication (x86 PCLMULQDQ),
// for size >= 64 and a multiple of 16: the data is folded 64 bytes at a time
// into four 128-bit remainders (each multiplied by x^(512 +- 32) mod P and
// added to the next block), those into one, that one to 64 and then 32 bits
// (Barrett reduction). The constants are powers of x modulo the CRC-32
// polynomial in the bit-reflected form (Gopal et al., "Fast CRC computation
// for generic polynomials using PCLMULQDQ", Intel, 2009).
__attribute__((target("pclmul,sse4.1"))) uint32_t crc32_clmul(uint32_t c, const uint8_t* p, size_t size) {
  const __m128i k1k2 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4);  // fold by 512 bits
  const __m128i k3k4 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);  // fold by 128 bits
  const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124);              // 64 -> 32 bits
  const __m128i poly = _mm_set_epi64x(0x1f7011641, 0x1db710641);  // Barrett: mu (high), P (low)
  const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
  __m128i x0 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(c)));
  __m128i x1 = load(p + 16), x2 = load(p + 32), x3 = load(p + 48);
  p += 64;
  size -= 64;
  for (; size >= 64; p += 64, size -= 64) {
    x0 = fold(x0, k1k2, load(p));
    x1 = fold(x1, k1k2, load(p + 16));
    x2 = fold(x2, k1k2, load(p + 32));
    x3 = fold(x3, k1k2, load(p + 48));
  }
  __m128i x = fold(fold(fold(x0, k3k4, x1), k3k4, x2), k3k4, x3);
  for (; size >= 16; p += 16, size -= 16) x = fold(x, k3k4, load(p));
  // 128 -> 64 bits (appending 32 zero bits), then 64 -> 32.
  x = _mm_xor_si128(_mm_srli_si128(x, 8), _mm_clmulepi64_si128(k3k4, x, 0x01));
  x = _mm_xor_si128(_mm_srli_si128(x, 4), _mm_clmulepi64_si128(_mm_and_si128(x, mask32), k5, 0x00));
  // Barrett reduction to the 32-bit remainder.
  __m128i t = _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(x, mask32), poly, 0x10), mask32);
  t = _mm_clmulepi64_si128(t, poly, 0x00);
  return static_cast<uint32_t>(_mm_extract_epi32(_mm_xor_si128(x, t), 1));
}

// Carry-less multiplication unless the CPU lacks it or NFSIEVE_SIMD=scalar
// asks for the portable paths (as the cut trees' leaf scan; the tests load
// tables both ways).
bool clmul_enabled() {
  static const bool have = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  const char* s = std::getenv("NFSIEVE_SIMD");
  return have && !(s && std::strcmp(s, "scalar") == 0);
}

}  // namespace

// CRC-32 (IEEE 802.3, reflected, as zlib): carry-less multiplication (a
// 125 MiB table checks in about 15 ms instead of 60), else slicing-by-8.
uint32_t crc32(const uint8_t* data, size_t size) {
  uint32_t c = 0xffffffffu;
  if (size >= 64 && clmul_enabled()) {
    const size_t bulk = size & ~size_t(15);
    c = crc32_clmul(c, data, bulk);
    data += bulk;
    size -= bulk;
  }
  return crc32_slicing(c, data, size) ^ 0xffffffffu;
}

class TableLoader {
 public:
  TableLoader(Table* t, std::string* error) : t_(t), error_(error) {}

  bool load(const uint8_t* data, size_t size) {
    if (size < kHeaderSize) return fail("table too short for its header (" + std::to_string(size) + " bytes)");
    if (size > 0xffffffffu) return fail("table larger than 4 GiB");
    const size_t words = (size + 7) / 8;
    t_->storage_.reset(new uint64_t[words]);
    advise_huge_pages(t_->storage_.get(), words * 8);
    t_->storage_[words - 1] = 0;  // the padding after the last byte
    std::memcpy(t_->storage_.get(), data, size);
    t_->size_ = size;
    bytes_ = reinterpret_cast<const uint8_t*>(t_->storage_.get());
    size_ = size;
    std::memcpy(&h_, bytes_, sizeof h_);
    if (!load_header() || !load_sections()) return false;
    if (!load_strings(h_.strings_off, h_.strings_size)) return false;
    if (!load_sets(h_.sets_off, h_.set_count)) return false;
    if (!check_rules() || !load_limits() || !check_residuals()) return false;
    if (!load_family(h_.fam4_off, 4, &t_->fam4_)) return false;
    if (!load_family(h_.fam6_off, 6, &t_->fam6_)) return false;
    return true;
  }

 private:
  // Magic, version, sizes, checksum and the default verdict.
  bool load_header() {
    if (h_.magic != kTableMagic) return fail("not an nfsieve table (bad magic)");
    if (h_.version != kTableVersionPlain && h_.version != kTableVersion)
      return fail("table version " + std::to_string(h_.version) + " is not supported (this build reads versions 1 and 2)");
    if (h_.header_size != kHeaderSize) return fail("bad header size");
    if (h_.total_size != size_)
      return fail("table size field " + std::to_string(h_.total_size) + " does not match its " + std::to_string(size_) +
                  " bytes");
    constexpr size_t kSummed = offsetof(wire::TableHeader, rule_count);  // the checksum covers what follows it
    if (crc32(bytes_ + kSummed, size_ - kSummed) != h_.checksum) return fail("checksum mismatch: the table is corrupt");
    t_->rule_count_ = h_.rule_count;
    t_->default_verdict_ = h_.default_verdict;
    t_->flags_ = h_.flags;
    if (t_->default_verdict_ > kActReject) return fail("bad default verdict");
    return true;
  }

  // The rules, residuals, references, sets and (version 2) limits sections in bounds.
  bool load_sections() {
    if (!span(h_.rules_off, uint64_t(h_.rule_count) * sizeof(RuleRec), 8)) return fail("rules section out of bounds");
    if (!span(h_.residuals_off, uint64_t(h_.residual_count) * sizeof(ResidualRec), 8))
      return fail("residual section out of bounds");
    if (!span(h_.refs_off, uint64_t(h_.ref_count) * 4, 4)) return fail("reference section out of bounds");
    if (!span(h_.sets_off, uint64_t(h_.set_count) * 16, 8)) return fail("set section out of bounds");
    t_->rules_ = reinterpret_cast<const RuleRec*>(bytes_ + h_.rules_off);
    t_->residuals_ = reinterpret_cast<const ResidualRec*>(bytes_ + h_.residuals_off);
    t_->refs_ = reinterpret_cast<const uint32_t*>(bytes_ + h_.refs_off);
    // Version 2: the limits section (limits_off and limit_count are reserved in version 1).
    const uint32_t limit_count = h_.version >= 2 ? h_.limit_count : 0;
    if (limit_count && !span(h_.limits_off, uint64_t(limit_count) * sizeof(LimitRec), 8))
      return fail("limits section out of bounds");
    if (limit_count) t_->limits_ = reinterpret_cast<const LimitRec*>(bytes_ + h_.limits_off);
    t_->limit_count_ = limit_count;
    return true;
  }

  bool check_rules() {
    const uint32_t rules = h_.rule_count;
    for (uint32_t i = 0; i < rules; i++) {
      const RuleRec& r = t_->rules_[i];
      const std::string at = "rule " + std::to_string(i) + ": ";
      if (r.action > kActRepeat) return fail(at + "bad action code");
      if (r.action == kActSkip && (r.skip_to <= i || r.skip_to > rules)) return fail(at + "skip target out of range");
      if (uint64_t(r.residual_start) + r.residual_count > h_.residual_count) return fail(at + "residuals out of range");
    }
    return true;
  }

  bool check_residuals() {
    for (uint32_t i = 0; i < h_.residual_count; i++) {
      const ResidualRec& r = t_->residuals_[i];
      const std::string at = "residual " + std::to_string(i) + ": ";
      if (r.kind < kResMark || r.kind > kResLimit) return fail(at + "bad kind");
      if (r.kind == kResMark || r.kind == kResLimit) continue;  // limits: checked by load_limits
      if (uint64_t(r.a) + r.b > h_.ref_count || r.b == 0) return fail(at + "references out of range");
      for (uint32_t k = 0; k < r.b; k++) {
        uint32_t v = t_->refs_[r.a + k];
        if (r.kind == kResIn || r.kind == kResOut) {
          if (v >= t_->strings_.size()) return fail(at + "interface pattern out of range");
        } else {
          if (v >= h_.set_count) return fail(at + "set index out of range");
          uint8_t want = (r.kind == kResSetSpi || r.kind == kResSetAhSpi) ? wire::kSetKindSpi : wire::kSetKindAddress;
          if (t_->sets_[v].kind != want) return fail(at + "set of the wrong kind");
        }
      }
    }
    return true;
  }

  Table* t_;
  std::string* error_;
  wire::TableHeader h_{};
  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;

  bool fail(const std::string& message) {
    *error_ = "invalid table: " + message;
    return false;
  }
  uint32_t u32(size_t at) const {
    uint32_t v;
    std::memcpy(&v, bytes_ + at, 4);
    return v;
  }
  // [off, off+len) inside the table, past the header, aligned.
  bool span(uint64_t off, uint64_t len, uint64_t align) const {
    return off >= kHeaderSize && off % align == 0 && off <= size_ && len <= size_ - off;
  }

  // The evaluator trusts summaries to skip blocks: each must be exact.
  static bool summary_matches(const uint64_t* vec, const uint64_t* sum, uint32_t words) {
    uint32_t swords = (words + 63) / 64;
    for (uint32_t s = 0; s < swords; s++) {
      uint64_t expect = 0;
      for (uint32_t b = 0; b < 64 && s * 64 + b < words; b++)
        if (vec[s * 64 + b]) expect |= 1ull << b;
      if (sum[s] != expect) return false;
    }
    return true;
  }

  // Each limit record sane, and each used by exactly one rule, as that rule's
  // last residual (the limit is checked only once every other condition holds).
  bool load_limits() {
    const uint32_t n = t_->limit_count_;
    t_->limit_rules_.assign(n, UINT32_MAX);
    uint64_t sources = 0;
    for (uint32_t i = 0; i < n; i++) {
      const LimitRec& l = t_->limits_[i];
      const std::string at = "limit " + std::to_string(i) + ": ";
      BucketParams params;
      if (l.per != kLimitPerRule && l.per != kLimitPerSource) return fail(at + "bad kind");
      if (l.rate == 0 || l.burst == 0 || l.period_ns == 0) return fail(at + "rate, burst and period must be positive");
      if (!bucket_params(l, &params)) return fail(at + "burst times the token cost does not fit 62 bits");
      if (l.per == kLimitPerSource && (l.prefix4 < 1 || l.prefix4 > 32 || l.prefix6 < 1 || l.prefix6 > 128))
        return fail(at + "bad source prefix length");
      if (l.per == kLimitPerSource && (l.max_sources == 0 || l.max_sources > kMaxSources))
        return fail(at + "max-sources out of range");
      if (l.per == kLimitPerSource) sources += l.max_sources;
    }
    // Per-source buckets are preallocated at load (limit.h): bound them in all.
    if (sources > kMaxSources)
      return fail("per-source limits keep " + std::to_string(sources) + " sources in all (at most 16777216)");
    for (uint32_t ri = 0; ri < t_->rule_count_; ri++) {
      const RuleRec& r = t_->rules_[ri];
      for (uint32_t k = 0; k < r.residual_count; k++) {
        const ResidualRec& res = t_->residuals_[r.residual_start + k];
        if (res.kind != kResLimit) continue;
        const std::string at = "rule " + std::to_string(ri) + ": ";
        if (k + 1 != r.residual_count) return fail(at + "a limit must be the rule's last residual");
        if (res.negate || res.a >= n) return fail(at + "bad limit reference");
        if (t_->limit_rules_[res.a] != UINT32_MAX) return fail(at + "limit " + std::to_string(res.a) + " used by two rules");
        t_->limit_rules_[res.a] = ri;
      }
    }
    for (uint32_t i = 0; i < n; i++)
      if (t_->limit_rules_[i] == UINT32_MAX) return fail("limit " + std::to_string(i) + ": no rule uses it");
    return true;
  }

  bool load_strings(uint32_t off, uint32_t size) {
    if (!span(off, size, 4) || size < 4) return fail("string section out of bounds");
    uint32_t count = u32(off);
    if (uint64_t(count) * 8 + 4 > size) return fail("string directory out of bounds");
    for (uint32_t i = 0; i < count; i++) {
      uint32_t so = u32(off + 4 + i * 8), sl = u32(off + 8 + i * 8);
      if (uint64_t(so) + sl > size) return fail("string " + std::to_string(i) + " out of bounds");
      t_->strings_.emplace_back(reinterpret_cast<const char*>(bytes_ + off + so), sl);
    }
    return true;
  }

  bool load_sets(uint32_t off, uint32_t count) {
    for (uint32_t i = 0; i < count; i++) {
      size_t at = off + i * 16;
      SetElementsView v;
      v.kind = bytes_[at];
      uint32_t name = u32(at + 4);
      v.count = u32(at + 8);
      uint32_t elems = u32(at + 12);
      if (v.kind != wire::kSetKindAddress && v.kind != wire::kSetKindSpi) return fail("set " + std::to_string(i) + ": bad kind");
      if (name >= t_->strings_.size()) return fail("set " + std::to_string(i) + ": name out of range");
      v.name = t_->strings_[name];
      uint64_t esize = v.kind == wire::kSetKindAddress ? 20 : 8;
      if (!span(elems, uint64_t(v.count) * esize, 4)) return fail("set '" + v.name + "': elements out of bounds");
      v.elements = bytes_ + elems;
      for (uint32_t k = 0; v.kind == wire::kSetKindAddress && k < v.count; k++) {
        const uint8_t* e = v.elements + k * 20;
        if (!((e[0] == 4 && e[1] <= 32) || (e[0] == 6 && e[1] <= 128))) return fail("set '" + v.name + "': bad address element");
      }
      for (uint32_t k = 0; v.kind == wire::kSetKindSpi && k < v.count; k++) {
        uint32_t lo, hi;
        std::memcpy(&lo, v.elements + k * 8, 4);
        std::memcpy(&hi, v.elements + k * 8 + 4, 4);
        if (lo > hi) return fail("set '" + v.name + "': empty SPI range");
      }
      t_->sets_.push_back(v);
    }
    return true;
  }

  // Over 60 lines: every check of a family table, in the order of its layout (docs/table-format.md).
  bool load_family(uint32_t off, int fam, Family* f) {
    const std::string at = "IPv" + std::to_string(fam) + " table: ";
    if (!span(off, 16, 8)) return fail(at + "out of bounds");
    f->words = u32(off);
    f->summary_words = (f->words + 63) / 64;
    uint32_t dims = u32(off + 4);
    uint32_t base = u32(off + 8);
    uint32_t base_summary = u32(off + 12);
    if (f->words != (t_->rule_count_ + 63) / 64) return fail(at + "vector width does not match the rule count");
    if (dims > kMaxDims) return fail(at + "too many fields");
    if (!span(off, 16 + uint64_t(dims) * 32, 8)) return fail(at + "field descriptors out of bounds");
    const uint64_t vbytes = uint64_t(f->words) * 8;
    if (!span(base, vbytes, 8)) return fail(at + "base vector out of bounds");
    f->base = reinterpret_cast<const uint64_t*>(bytes_ + base);
    const uint64_t sbytes = uint64_t(f->summary_words) * 8;
    if (!span(base_summary, sbytes, 8)) return fail(at + "base summary out of bounds");
    f->base_summary = reinterpret_cast<const uint64_t*>(bytes_ + base_summary);
    if (!summary_matches(f->base, f->base_summary, f->words)) return fail(at + "base summary does not match its vector");
    // Bits past the last rule must be clear: the base vector masks every AND.
    if (t_->rule_count_ % 64 && (f->base[f->words - 1] >> (t_->rule_count_ % 64)) != 0)
      return fail(at + "base vector has bits past the last rule");
    uint32_t seen = 0;
    for (uint32_t i = 0; i < dims; i++) {
      size_t d = off + 16 + i * 32;
      Dim& dim = f->dims[i];
      dim.field = bytes_[d];
      dim.wide = bytes_[d + 1] != 0;
      dim.boundary_count = u32(d + 4);
      uint32_t boff = u32(d + 8), coff = u32(d + 12), voff = u32(d + 16);
      dim.vector_count = u32(d + 20);
      uint32_t soff = u32(d + 24);
      const std::string dat = at + "field " + std::to_string(dim.field) + ": ";
      if (dim.field < kFieldSrc || dim.field > kFieldLast) return fail(dat + "unknown field");
      if (seen & (1u << dim.field)) return fail(dat + "appears twice");
      seen |= 1u << dim.field;
      bool want_wide = fam == 6 && (dim.field == kFieldSrc || dim.field == kFieldDst);
      if (dim.wide != want_wide) return fail(dat + "wrong key width");
      uint64_t key_words = dim.wide ? 2 : 1;
      if (!span(boff, uint64_t(dim.boundary_count) * key_words * 8, 8)) return fail(dat + "boundaries out of bounds");
      if (!span(coff, (uint64_t(dim.boundary_count) + 1) * 4, 4)) return fail(dat + "classes out of bounds");
      if (dim.vector_count == 0 || !span(voff, uint64_t(dim.vector_count) * vbytes, 8))
        return fail(dat + "vectors out of bounds");
      dim.boundaries = reinterpret_cast<const uint64_t*>(bytes_ + boff);
      dim.classes = reinterpret_cast<const uint32_t*>(bytes_ + coff);
      dim.vectors = reinterpret_cast<const uint64_t*>(bytes_ + voff);
      if (!span(soff, uint64_t(dim.vector_count) * sbytes, 8)) return fail(dat + "summaries out of bounds");
      dim.summaries = reinterpret_cast<const uint64_t*>(bytes_ + soff);
      for (uint32_t k = 0; k < dim.vector_count; k++) {
        if (!summary_matches(dim.vectors + size_t(k) * f->words, dim.summaries + size_t(k) * f->summary_words, f->words))
          return fail(dat + "summary " + std::to_string(k) + " does not match its vector");
      }
      for (uint32_t k = 0; k <= dim.boundary_count; k++)
        if (dim.classes[k] >= dim.vector_count) return fail(dat + "class index out of range");
      for (uint32_t k = 1; k < dim.boundary_count; k++) {
        bool increasing =
            dim.wide
                ? (dim.boundaries[2 * k] > dim.boundaries[2 * k - 2] ||
                   (dim.boundaries[2 * k] == dim.boundaries[2 * k - 2] && dim.boundaries[2 * k + 1] > dim.boundaries[2 * k - 1]))
                : dim.boundaries[k] > dim.boundaries[k - 1];
        if (!increasing) return fail(dat + "boundaries not strictly increasing");
      }
    }
    f->dim_count = static_cast<int>(dims);
    return true;
  }
};

std::unique_ptr<Table> Table::load(const uint8_t* data, size_t size, std::string* error) {
  std::unique_ptr<Table> t(new Table());
  TableLoader loader(t.get(), error);
  if (!loader.load(data, size)) return nullptr;
  return t;
}

}  // namespace nfsieve
