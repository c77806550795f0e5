// Building the lookup index (see index.h): field maps, then pre-combined
// field pairs within the work and memory budgets.
#include "index.h"

#include <algorithm>
#include <cstring>

#include "cuts.h"
#include "reserve.h"

namespace nfsieve {
namespace {

constexpr uint64_t kDirectLimit = uint64_t(1) << 17;

// Number of boundaries <= key: the key's elementary interval.
uint32_t interval_narrow(const Dim& dim, uint64_t key) {
  return static_cast<uint32_t>(std::upper_bound(dim.boundaries, dim.boundaries + dim.boundary_count, key) - dim.boundaries);
}

void build_direct(const Dim& dim, FieldMap* m) {
  const uint32_t n = dim.boundary_count;
  m->kind = FieldMap::kDirect;
  m->direct_size = n ? static_cast<uint32_t>(dim.boundaries[n - 1]) : 0;  // keys from the last boundary on: last interval
  m->above = dim.classes[n];
  m->direct.resize(m->direct_size);
  uint32_t i = 0;
  for (uint32_t k = 0; k < m->direct_size; k++) {
    while (i < n && dim.boundaries[i] <= k) i++;
    m->direct[k] = static_cast<uint16_t>(dim.classes[i]);
  }
}

// Fills t[off, off + count) for the blocks of `sub` keys starting at lo,
// `at` being the number of boundaries <= lo: a run of blocks with no boundary
// strictly inside gets the class of its keys in one fill; a block with one
// gets a chunk of 256 sub-blocks, filled the same way. Boundaries are swept
// once, left to right.
bool fill_chunk(const Dim& dim, uint64_t lo, uint64_t sub, uint32_t count, uint32_t at, size_t off, size_t max_entries,
                std::vector<uint16_t>* t) {
  const uint32_t n = dim.boundary_count;
  const uint64_t* b = dim.boundaries;
  uint32_t i = 0;
  while (i < count) {
    const uint64_t block_lo = lo + i * sub;
    while (at < n && b[at] <= block_lo) at++;
    // Blocks before the one holding the next boundary all share one class.
    const uint64_t j = at == n ? count : std::min<uint64_t>(count, (b[at] - lo) / sub);
    if (j > i) {
      std::fill(t->begin() + off + i, t->begin() + off + j, static_cast<uint16_t>(dim.classes[at]));
      i = static_cast<uint32_t>(j);
      continue;
    }
    const size_t chunk_off = t->size();
    const uint32_t chunk = static_cast<uint32_t>((chunk_off - 65536) >> 8);
    if (chunk_off + 256 > max_entries || chunk >= FieldMap::kMaxChunks) return false;
    t->resize(chunk_off + 256);
    if (!fill_chunk(dim, block_lo, sub / 256, 256, at, chunk_off, max_entries, t)) return false;
    (*t)[off + i] = static_cast<uint16_t>(FieldMap::kChunk | chunk);
    i++;
  }
  return true;
}

bool build_trie(const Dim& dim, size_t max_bytes, FieldMap* m) {
  std::vector<uint16_t>& t = m->trie;
  // Every chunk the budget allows, reserved (reserve.h): a fifth of fw1_10k's load was the trie moving.
  const size_t max_entries = max_bytes / 2;
  reserve_budget(&t, std::min<size_t>(max_entries, 65536 + size_t(FieldMap::kMaxChunks) * 256) * 2);
  t.assign(65536, 0);
  if (!fill_chunk(dim, 0, 65536, 65536, 0, 0, max_entries, &t)) {
    std::vector<uint16_t>().swap(t);
    return false;
  }
  trim_reserve(&t);
  m->kind = FieldMap::kTrie;
  return true;
}

FieldMap make_map(const Dim& dim, size_t trie_bytes) {
  FieldMap m;
  if (dim.wide) return m;
  const uint32_t n = dim.boundary_count;
  const uint64_t last = n ? dim.boundaries[n - 1] : 0;
  // Even a handful of boundaries goes to an array or a trie: searching them
  // costs four dependent compares per key, which in a lookup that is only
  // maps and stages (the compact index) is most of it (fw2_100k 14.0 ->
  // 10.3 ns, fw5_100k 13.8 -> 11.8, fw2_1k 14.2 -> 12.5, for 0.13 MiB more).
  if (last < kDirectLimit && dim.vector_count <= 65536)
    build_direct(dim, &m);
  else if (dim.vector_count <= FieldMap::kChunk)
    build_trie(dim, trie_bytes, &m);
  return m;
}

// Deduplicating store of the vectors a stage produces. A slot holds the high
// 32 bits of a vector's hash beside its class (8 bytes: a probe reads one
// line, and the table stays in cache); they also pick the slot.
class VectorStore {
 public:
  VectorStore(uint32_t words, Stage* s) : words_(words), swords_((words + 63) / 64), s_(s), slots_(1024) {}

  uint32_t size() const { return count_; }

  // Class of `v` (with summary `sv`), added when new; false past `limit` bytes.
  bool intern(const uint64_t* v, const uint64_t* sv, uint64_t hash, size_t limit, uint32_t* cls) {
    const size_t mask = slots_.size() - 1;
    size_t i = home(tag(hash));
    for (; slots_[i].cls; i = (i + 1) & mask) {
      const uint32_t c = slots_[i].cls - 1;
      if (slots_[i].tag == tag(hash) && std::memcmp(&s_->vectors[size_t(c) * words_], v, words_ * 8) == 0) {
        *cls = c;
        return true;
      }
    }
    if ((s_->vectors.size() + words_ + swords_ + s_->summaries.size()) * 8 > limit) return false;
    *cls = count_++;
    vectors_ahead_.ahead(s_->vectors, words_);
    summaries_ahead_.ahead(s_->summaries, swords_);
    s_->vectors.insert(s_->vectors.end(), v, v + words_);
    s_->summaries.insert(s_->summaries.end(), sv, sv + swords_);
    slots_[i] = Slot{tag(hash), count_};
    if (size_t(count_) * 2 > slots_.size()) grow();
    return true;
  }

 private:
  struct Slot {
    uint32_t tag = 0;  // the hash's high half
    uint32_t cls = 0;  // class + 1; 0: empty
  };
  uint32_t words_, swords_, count_ = 0;
  Stage* s_;
  std::vector<Slot> slots_;
  Populated vectors_ahead_, summaries_ahead_;  // reserve.h

  static uint32_t tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }
  size_t home(uint32_t tag) const { return tag & (slots_.size() - 1); }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const size_t mask = slots_.size() - 1;
    for (const Slot& e : old)
      if (e.cls) {
        size_t i = home(e.tag);
        while (slots_[i].cls) i = (i + 1) & mask;
        slots_[i] = e;
      }
  }
};

// A vector's hash: each non-zero word's term is independent of the others
// (a chained hash made every pair's hash a serial run of multiplies, 30-40 ns
// at 14 words), and the sum is mixed once at the end (murmur3's finaliser).
inline uint64_t word_term(uint32_t w, uint64_t x) { return (x ^ (uint64_t(w) << 32 | w)) * 0x9e3779b97f4a7c15ull; }
inline uint64_t finish_hash(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

// Half the memory for a map whose values all fit 16 bits.
void narrow_map(Stage* s, uint32_t max_value) {
  if (max_value > 0xffff) return;
  s->map16.assign(s->map.begin(), s->map.end());
  s->map.clear();
  s->map.shrink_to_fit();
}

// Every (class i of A, class j of B), as visit(slot i * |B| + j, view) where
// the view walks the words both vectors (and the base) have non-zero in
// summary word sw: fn(word index, AND of the three words, its summary bit).
struct PairView {
  const Family& f;
  const uint64_t *av, *as, *bv, *bs;
  template <typename Fn>
  void words_in(uint32_t sw, Fn fn) const {
    for (uint64_t bits = as[sw] & bs[sw] & f.base_summary[sw]; bits; bits &= bits - 1) {
      const uint32_t w = sw * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
      if (fn(w, av[w] & bv[w] & f.base[w], bits & -bits)) return;
    }
  }
};

template <typename Visit>
void each_pair(const Family& f, const Operand& A, const Operand& B, Visit visit) {
  const uint32_t W = f.words, S = f.summary_words;
  for (uint32_t i = 0; i < A.count; i++)
    for (uint32_t j = 0; j < B.count; j++)
      visit(size_t(i) * B.count + j, PairView{f, A.vectors + size_t(i) * W, A.summaries + size_t(i) * S,
                                              B.vectors + size_t(j) * W, B.summaries + size_t(j) * S});
}

// The first rule set in a, b and `base` (null: a holds the base already),
// through the words both summaries mark; `none` when there is none.
inline uint32_t first_common(const uint64_t* a, const uint64_t* sa, const uint64_t* b, const uint64_t* sb, const uint64_t* base,
                             uint32_t summary_words, uint32_t none) {
  for (uint32_t sw = 0; sw < summary_words; sw++)
    for (uint64_t bits = sa[sw] & sb[sw]; bits; bits &= bits - 1) {
      const uint32_t w = sw * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
      const uint64_t x = a[w] & b[w] & (base ? base[w] : ~uint64_t(0));
      if (x) return w * 64 + static_cast<uint32_t>(__builtin_ctzll(x));
    }
  return none;
}

// A final stage: the first rule in the AND of each pair (rule_count: none).
// `map` holds A.count x B.count entries (16 bits when every rule number
// fits). Each class of A is ANDed with the base once (its vectors only when
// that copy takes at most 1 MiB); B is met in blocks of about 16 KiB, each
// kept in cache across all of A's classes.
template <typename T>
void first_candidates(const Family& f, uint32_t rules, const Operand& A, const Operand& B, T* map) {
  const uint32_t W = f.words, S = f.summary_words;
  const bool copy = size_t(A.count) * W * 8 <= (size_t(1) << 20);
  std::vector<uint64_t> av(copy ? size_t(A.count) * W : 0), as(size_t(A.count) * S);
  for (size_t i = 0; i < A.count; i++) {
    for (uint32_t w = 0; copy && w < W; w++) av[i * W + w] = A.vectors[i * W + w] & f.base[w];
    for (uint32_t sw = 0; sw < S; sw++) as[i * S + sw] = A.summaries[i * S + sw] & f.base_summary[sw];
  }
  const uint32_t block = std::max<uint32_t>(1, (16u << 10) / (8 * (W + S)));
  for (uint32_t j0 = 0; j0 < B.count; j0 += block) {
    const uint32_t j1 = std::min(B.count, j0 + block);
    for (uint32_t i = 0; i < A.count; i++) {
      const uint64_t *a = copy ? &av[size_t(i) * W] : A.vectors + size_t(i) * W, *sa = &as[size_t(i) * S];
      T* out = map + size_t(i) * B.count;
      for (uint32_t j = j0; j < j1; j++)
        out[j] = static_cast<T>(
            first_common(a, sa, B.vectors + size_t(j) * W, B.summaries + size_t(j) * S, copy ? nullptr : f.base, S, rules));
    }
  }
}

// Small tables (at most kDenseWords vector words, 1,024 rules): every word of
// a pair is read, four at a time (AVX2), instead of following the summary
// bits. Those bits mark the words each side has non-zero, not the words
// both share, so at this width a pair followed several of them to an empty
// AND; reading 4 words costs one compare. A and B are copied into rows
// padded with zero words to a multiple of 4 (A with the base ANDed in).
constexpr uint32_t kDenseWords = 16;

// Whether a family's stages take the dense way (below).
bool dense_pairs(const Family& f, bool simd) { return simd && f.words <= kDenseWords && cuts_avx2_available(); }

struct DenseRows {
  uint32_t stride = 0;  // words a row, a multiple of 4
  uint64_t* rows = nullptr;
  std::vector<uint64_t> store;
  DenseRows(const Operand& o, uint32_t words, const uint64_t* base) : stride((words + 3) & ~3u) {
    assign_populated(&store, size_t(o.count) * stride + 4, uint64_t(0));  // + 4: room to align to 32 bytes
    rows = store.data() + ((4 - (reinterpret_cast<uintptr_t>(store.data()) >> 3)) & 3);
    for (size_t i = 0; i < o.count; i++)
      for (uint32_t w = 0; w < words; w++) rows[i * stride + w] = o.vectors[i * words + w] & (base ? base[w] : ~uint64_t(0));
  }
  const uint64_t* row(size_t i) const { return rows + i * stride; }
};

__attribute__((target("avx2"))) inline uint32_t first_dense_avx2(const uint64_t* a, const uint64_t* b, uint32_t stride,
                                                                 uint32_t none) {
  for (uint32_t w = 0; w < stride; w += 4) {
    const __m256i x = _mm256_and_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(a + w)),
                                       _mm256_load_si256(reinterpret_cast<const __m256i*>(b + w)));
    const uint32_t empty =
        static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(x, _mm256_setzero_si256()))));
    if (empty != 15) {
      const uint32_t at = w + static_cast<uint32_t>(__builtin_ctz(~empty));
      return at * 64 + static_cast<uint32_t>(__builtin_ctzll(a[at] & b[at]));
    }
  }
  return none;
}

template <typename T>
__attribute__((target("avx2"))) void first_candidates_dense(const Family& f, uint32_t rules, const Operand& A, const Operand& B,
                                                            T* map) {
  const DenseRows a(A, f.words, f.base), b(B, f.words, nullptr);
  const uint32_t block = std::max<uint32_t>(1, (16u << 10) / (8 * a.stride));
  for (uint32_t j0 = 0; j0 < B.count; j0 += block) {
    const uint32_t j1 = std::min(B.count, j0 + block);
    for (uint32_t i = 0; i < A.count; i++) {
      T* out = map + size_t(i) * B.count;
      for (uint32_t j = j0; j < j1; j++) out[j] = static_cast<T>(first_dense_avx2(a.row(i), b.row(j), a.stride, rules));
    }
  }
}

template <typename T>
void final_stage(const Family& f, uint32_t rules, const Operand& A, const Operand& B, bool simd, T* map) {
  if (dense_pairs(f, simd))
    first_candidates_dense(f, rules, A, B, map);
  else
    first_candidates(f, rules, A, B, map);
}

// A stage's pairs through the summary bits: each pair's AND, interned
// (`map` gets its class). False when the store passes `limit` bytes or
// `max_classes` classes.
bool pairs_sparse(const Family& f, const Operand& A, const Operand& B, size_t limit, uint64_t max_classes, VectorStore* store,
                  uint32_t* map) {
  const uint32_t W = f.words, S = f.summary_words;
  std::vector<uint64_t> v(W, 0), sv(S, 0);
  bool fits = true;
  each_pair(f, A, B, [&](size_t slot, const PairView& p) {
    if (!fits) return;
    uint64_t h = 0;
    for (uint32_t sw = 0; sw < S; sw++) {
      uint64_t exact = 0;
      p.words_in(sw, [&](uint32_t w, uint64_t x, uint64_t bit) {
        if (x) {
          v[w] = x;
          exact |= bit;
          h += word_term(w, x);
        }
        return false;
      });
      sv[sw] = exact;
    }
    fits = store->intern(v.data(), sv.data(), finish_hash(h), limit, &map[slot]) && store->size() <= max_classes;
    for (uint32_t sw = 0; sw < S; sw++)  // clear what was written
      for (uint64_t bits = sv[sw]; bits; bits &= bits - 1) v[sw * 64 + __builtin_ctzll(bits)] = 0;
  });
  return fits;
}

// The same for a small table (at most kDenseWords words, one summary word),
// four words a step: the AND, its summary bits from the same compares, and
// a hash of 32-bit products. Any hash would do: classes are numbered in the
// order pairs first make them, so both ways build the same stage.
__attribute__((target("avx2"))) bool pairs_dense(const Family& f, const Operand& A, const Operand& B, size_t limit,
                                                 uint64_t max_classes, VectorStore* store, uint32_t* map) {
  const DenseRows a(A, f.words, f.base), b(B, f.words, nullptr);
  alignas(32) uint64_t v[kDenseWords];
  const __m256i k1 = _mm256_set1_epi64x(0x9e3779b9), k2 = _mm256_set1_epi64x(0x85ebca6b);
  for (uint32_t i = 0; i < A.count; i++)
    for (uint32_t j = 0; j < B.count; j++) {
      const uint64_t *x = a.row(i), *y = b.row(j);
      __m256i h = _mm256_setzero_si256(), at = _mm256_set_epi64x(3, 2, 1, 0);
      uint64_t summary = 0;
      for (uint32_t w = 0; w < a.stride; w += 4) {
        const __m256i z = _mm256_and_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(x + w)),
                                           _mm256_load_si256(reinterpret_cast<const __m256i*>(y + w)));
        _mm256_store_si256(reinterpret_cast<__m256i*>(v + w), z);
        const uint32_t empty =
            static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(z, _mm256_setzero_si256()))));
        summary |= uint64_t(~empty & 15) << w;
        const __m256i t = _mm256_xor_si256(z, at);
        h = _mm256_add_epi64(h, _mm256_add_epi64(_mm256_mul_epu32(t, k1), _mm256_mul_epu32(_mm256_srli_epi64(t, 32), k2)));
        at = _mm256_add_epi64(at, _mm256_set1_epi64x(4));
      }
      alignas(32) uint64_t lanes[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), h);
      const uint64_t hash = finish_hash(lanes[0] ^ (lanes[1] << 1) ^ (lanes[2] << 2) ^ (lanes[3] << 3));
      if (!store->intern(v, &summary, hash, limit, &map[size_t(i) * B.count + j]) || store->size() > max_classes) return false;
    }
  return true;
}

// One stage: every (class of a, class of b) pair. Returns false (stage
// unusable) when the memory budget runs out or it makes more than
// `max_classes` classes (a pair already tried does better).
bool combine(const Family& f, uint32_t rules, const Operand& A, const Operand& B, bool final, bool simd, size_t limit,
             uint64_t max_classes, Stage* s) {
  const uint32_t W = f.words, S = f.summary_words;
  s->final = final;
  s->b_count = B.count;
  if (final && rules <= 0xffff) {
    if (uint64_t(A.count) * B.count * 2 > limit) return false;
    assign_populated(&s->map16, size_t(A.count) * B.count, uint16_t(0));
    final_stage(f, rules, A, B, simd, s->map16.data());
    return true;
  }
  if (uint64_t(A.count) * B.count * 4 > limit) return false;
  assign_populated(&s->map, size_t(A.count) * B.count, 0u);
  limit -= s->map.size() * 4;
  if (final) {
    final_stage(f, rules, A, B, simd, s->map.data());
    return true;
  }
  VectorStore store(W, s);
  // As many classes as the budget holds, reserved (reserve.h): a third of fw4_1k's load was these vectors moving.
  const size_t room = std::min(limit, kReserveMax) / (W + S);
  reserve_budget(&s->vectors, room * W);
  reserve_budget(&s->summaries, room * S);
  const bool fits = dense_pairs(f, simd) ? pairs_dense(f, A, B, limit, max_classes, &store, s->map.data())
                                         : pairs_sparse(f, A, B, limit, max_classes, &store, s->map.data());
  if (!fits) return false;
  s->count = store.size();
  trim_reserve(&s->vectors);
  trim_reserve(&s->summaries);
  narrow_map(s, s->count - 1);
  return true;
}

// Once the last stage names the rule, a lookup reads only the stages' maps:
// the stages' vectors are freed, except (`resumes`) those of the last
// stage's two operands, on which a rule that does not end the scan resumes
// it (lanes.cc). Returns the bytes freed.
size_t drop_stage_vectors(FamilyIndex* fx, bool resumes) {
  const size_t F = fx->maps.size();
  const Stage& last = fx->stages.back();
  size_t freed = 0;
  for (size_t i = 0; i < fx->stages.size(); i++) {
    const int op = static_cast<int>(F + i);
    if (resumes && (op == last.a || op == last.b)) continue;
    Stage& s = fx->stages[i];
    freed += (s.vectors.size() + s.summaries.size()) * 8;
    std::vector<uint64_t>().swap(s.vectors);
    std::vector<uint64_t>().swap(s.summaries);
    fx->operands[op].vectors = fx->operands[op].summaries = nullptr;
  }
  return freed;
}

size_t stage_bytes(const Stage& s) { return s.map.size() * 4 + s.map16.size() * 2 + (s.vectors.size() + s.summaries.size()) * 8; }

}  // namespace

uint32_t narrow_class(const Dim& dim, const FieldMap& m, uint64_t key) {
  if (m.kind == FieldMap::kDirect) return m.direct_class(key);
  if (m.kind == FieldMap::kTrie && key <= 0xffffffffu) return m.trie_class(static_cast<uint32_t>(key));
  return dim.classes[interval_narrow(dim, key)];
}

LookupIndex::LookupIndex(const Table& table, const IndexLimits& limits) {
  bool resumes = false;
  for (uint32_t i = 0; i < table.rule_count() && !resumes; i++) resumes = !ends_scan(table.rule(i));
  bytes_ = build_family_index(table.family(4), table.rule_count(), table.byte_size(), limits, resumes, &fam4_) +
           build_family_index(table.family(6), table.rule_count(), table.byte_size(), limits, resumes, &fam6_);
}

// One pass over a family (maps, operands, then stages while the budgets last): ~65 lines, the
// budgets and the alive list are shared by every step.
size_t build_family_index(const Family& f, uint32_t rules, size_t table_bytes, const IndexLimits& limits, bool resumes,
                          FamilyIndex* out) {
  size_t bytes = 0;
  const int F = f.dim_count;
  for (int i = 0; i < F; i++) {
    // A trie may cost up to half the table (at least 1 MiB); past that the search stays.
    out->maps.push_back(make_map(f.dims[i], std::max<size_t>(size_t(1) << 20, table_bytes / 2)));
    bytes += out->maps.back().direct.size() * 2 + out->maps.back().trie.size() * 2;
    Operand o;
    o.count = f.dims[i].vector_count;
    o.vectors = f.dims[i].vectors;
    o.summaries = f.dims[i].summaries;
    out->operands.push_back(o);
  }
  std::vector<int> alive;
  for (int i = 0; i < F; i++) alive.push_back(i);
  size_t memory = limits.memory ? limits.memory : std::max<size_t>(size_t(8) << 20, 2 * table_bytes);
  uint64_t work = limits.work ? limits.work : index_work(f);
  out->stages.reserve(F);  // operand pointers into stages stay valid
  while (limits.combine && alive.size() >= 2) {
    std::stable_sort(alive.begin(), alive.end(), [&](int x, int y) { return out->operands[x].count < out->operands[y].count; });
    const bool final = alive.size() == 2;
    // Pairs to try: the two with fewest classes; with three left, every pair,
    // keeping the one whose final stage (its classes x the third operand's) is smallest.
    std::vector<std::pair<int, int>> tries = {{0, 1}};
    if (alive.size() == 3) tries = {{0, 1}, {0, 2}, {1, 2}};
    Stage best;
    int best_x = -1, best_y = -1;
    uint64_t best_size = 0;
    for (auto [x, y] : tries) {
      const Operand& A = out->operands[alive[x]];
      const Operand& B = out->operands[alive[y]];
      // Final stages touch about one summary word and one vector word per pair.
      const uint64_t cost = uint64_t(A.count) * B.count * (final ? f.summary_words + 1 : f.words);
      if (cost > work) continue;
      work -= cost;
      Stage s;
      s.a = alive[x];
      s.b = alive[y];
      const uint32_t third = alive.size() == 3 ? out->operands[alive[3 - x - y]].count : 1;
      const uint64_t max_classes = best_x < 0 ? UINT64_MAX : best_size / third;
      if (!combine(f, rules, A, B, final, limits.simd, memory, max_classes, &s)) continue;
      const uint64_t size = uint64_t(s.count) * third;
      if (best_x < 0 || size < best_size) {
        best_size = size;
        best = std::move(s);
        best_x = x;
        best_y = y;
      }
    }
    if (best_x < 0) break;
    memory -= stage_bytes(best);
    bytes += stage_bytes(best);
    out->stages.push_back(std::move(best));
    Stage& kept = out->stages.back();
    Operand o;
    o.count = kept.count;
    o.vectors = kept.vectors.data();
    o.summaries = kept.summaries.data();
    o.has_base = true;
    out->operands.push_back(o);
    alive.erase(alive.begin() + best_y);
    alive.erase(alive.begin() + best_x);
    if (final) return bytes - drop_stage_vectors(out, resumes);  // no roots: the last stage names the rule
    alive.push_back(static_cast<int>(out->operands.size()) - 1);
  }
  // Most classes first: those vectors are the sparsest, so the AND stops soonest.
  std::stable_sort(alive.begin(), alive.end(), [&](int x, int y) { return out->operands[x].count > out->operands[y].count; });
  out->roots = alive;
  out->base_root = true;
  for (int r : alive)
    if (out->operands[r].has_base) out->base_root = false;
  return bytes;
}

}  // namespace nfsieve

namespace nfsieve {
namespace {

// Costs of the vector index's steps under the miss model (index.h), counted
// from lanes(): a field's key to its class, a stage's map, and per summary
// word and candidate block of the scan (each operand's word one line).
constexpr double kMapStep = 10, kStageStep = 4, kSummaryStep = 3, kBlockStep = 8, kOperandStep = 3;

}  // namespace

uint64_t model_domain(const Dim& dim) {
  switch (dim.field) {
    case kFieldSrc:
    case kFieldDst:
    case kFieldSpi:
    case kFieldAhSpi: return uint64_t(1) << 32;
    case kFieldSport:
    case kFieldDport: return uint64_t(1) << 16;
    case kFieldProto:
    case kFieldIpProto: return 256;
    default: return dim.boundary_count ? dim.boundaries[dim.boundary_count - 1] + 1 : 1;
  }
}

double model_share(uint64_t d, uint64_t clamp, uint64_t a, uint64_t z) {
  const uint64_t top = std::min(clamp, d);  // keys below top are themselves
  double n = 0;
  if (a < top) n += double(std::min(z, top - 1) - a + 1);
  if (clamp < d && a <= clamp && clamp <= z) n += double(d - clamp);  // keys from clamp on are clamp
  return n / double(d);
}

double vector_miss_cost(const Family& f, const FamilyIndex& fx) {
  const int F = f.dim_count, S = static_cast<int>(fx.stages.size());
  double cost = F * kMapStep + S * kStageStep;
  if (S > 0 && fx.stages.back().final) return cost;
  // Each operand's classes weighted by the share of headers that reach them.
  std::vector<std::vector<double>> w(fx.operands.size());
  for (int i = 0; i < F; i++) {
    const Dim& dim = f.dims[i];
    if (dim.wide) return -1;
    w[i].assign(dim.vector_count, 0);
    for (uint32_t k = 0; k <= dim.boundary_count; k++) {
      const uint64_t a = k ? dim.boundaries[k - 1] : 0, z = k < dim.boundary_count ? dim.boundaries[k] - 1 : ~uint64_t(0);
      if (a <= z) w[i][dim.classes[k]] += model_share(dim, ~uint64_t(0), a, z);
    }
  }
  for (int s = 0; s < S; s++) {  // fields independent: a pair's share is the product of its classes'
    const Stage& st = fx.stages[s];
    std::vector<double>& ws = w[F + s];
    ws.assign(fx.operands[F + s].count, 0);
    const std::vector<double>&wa = w[st.a], &wb = w[st.b];
    for (size_t x = 0; x < wa.size(); x++)
      for (size_t y = 0; y < wb.size(); y++) {
        const size_t at = x * st.b_count + y;
        ws[st.map16.empty() ? st.map[at] : st.map16[at]] += wa[x] * wb[y];
      }
  }
  // Candidate blocks: per block, the product over the ANDed operands of the
  // share of headers whose class has a rule in it.
  const uint32_t blocks = f.words;
  std::vector<double> p(blocks, 1.0), po(blocks);
  const int n = static_cast<int>(fx.roots.size()) + (fx.base_root ? 1 : 0);
  for (int op : fx.roots) {
    std::fill(po.begin(), po.end(), 0.0);
    const Operand& o = fx.operands[op];
    for (uint32_t c = 0; c < o.count; c++) {
      if (w[op][c] == 0) continue;
      const uint64_t* sum = o.summaries + size_t(c) * f.summary_words;
      for (uint32_t sw = 0; sw < f.summary_words; sw++)
        for (uint64_t b = sum[sw]; b; b &= b - 1) po[sw * 64 + __builtin_ctzll(b)] += w[op][c];
    }
    for (uint32_t b = 0; b < blocks; b++) p[b] *= po[b];
  }
  double candidates = 0;
  for (uint32_t b = 0; b < blocks; b++)
    if ((f.base_summary[b >> 6] >> (b & 63)) & 1) candidates += p[b];
  return cost + f.summary_words * n * kSummaryStep + candidates * (kBlockStep + n * (kOperandStep + kModelLine));
}

double vector_hit_cost(const Family& f, const FamilyIndex& fx, const uint64_t* keys) {
  const int F = f.dim_count, S = static_cast<int>(fx.stages.size());
  double cost = F * kMapStep + S * kStageStep;
  if (S > 0 && fx.stages.back().final) return cost;
  std::vector<uint32_t> cls(fx.operands.size());
  for (int i = 0; i < F; i++) cls[i] = narrow_class(f.dims[i], fx.maps[i], keys[i]);
  for (int s = 0; s < S; s++) {
    const Stage& st = fx.stages[s];
    const size_t at = size_t(cls[st.a]) * st.b_count + cls[st.b];
    cls[F + s] = st.map16.empty() ? st.map[at] : st.map16[at];
  }
  std::vector<const uint64_t*> vec, sum;
  for (int op : fx.roots) {
    vec.push_back(fx.operands[op].vectors + size_t(cls[op]) * f.words);
    sum.push_back(fx.operands[op].summaries + size_t(cls[op]) * f.summary_words);
  }
  if (fx.base_root) vec.push_back(f.base), sum.push_back(f.base_summary);
  const size_t n = vec.size();
  for (uint32_t sw = 0; sw < f.summary_words; sw++) {
    cost += n * kSummaryStep;
    uint64_t bits = ~uint64_t(0);
    for (size_t v = 0; v < n; v++) bits &= sum[v][sw];
    for (; bits; bits &= bits - 1) {
      const uint32_t w = sw * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
      cost += kBlockStep + n * (kOperandStep + kModelLine);
      uint64_t acc = ~uint64_t(0);
      for (size_t v = 0; v < n; v++) acc &= vec[v][w];
      if (acc) return cost;
    }
  }
  return cost;
}

}  // namespace nfsieve
