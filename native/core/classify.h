// The evaluator: one decoded packet + its metadata -> a verdict, against a
// loaded table and its named sets. No allocation, no locks, no exceptions.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "compact.h"
#include "cuts.h"
#include "decode.h"
#include "index.h"
#include "limit.h"
#include "sets.h"
#include "table.h"

namespace nfsieve {

// What the packet's surroundings tell: interfaces, conntrack state, mark.
struct Meta {
  const char* in = nullptr;  // interface names, not necessarily NUL-terminated
  uint8_t in_len = 0;
  const char* out = nullptr;
  uint8_t out_len = 0;
  uint8_t ctstate = 0;  // 0 unknown, 1 invalid, 2 new, 3 established, 4 related, 5 untracked
  uint32_t mark = 0;
  uint64_t now_ns = 0;  // monotonic clock (ns): what rate limits measure time by
};

constexpr int32_t kRuleDefault = -1;  // the default verdict decided
constexpr int32_t kRuleNotIp = -2;    // no IP header: no verdict

enum VerdictCode : uint8_t {
  kVerdictAccept = 0,
  kVerdictDrop,
  kVerdictReject,
  kVerdictQueue,
  kVerdictRepeat,
  kVerdictNone = 255
};

struct Verdict {
  int32_t rule;
  uint8_t verdict;
  uint8_t mark_set;
  uint16_t queue;
  uint32_t mark;
};

// Hit, byte and over-limit counters, one slot per rule plus one for the
// default verdict. One writer (the thread that classifies) and any number of
// readers: the writer adds with a relaxed load and store (a plain add on
// x86), readers load. Over limit: the packets that met every other condition
// of a rule with a limit but found its bucket empty.
class Counters {
 public:
  explicit Counters(size_t rules)
      : size_(rules + 1),
        hits_(new std::atomic<uint64_t>[size_]),
        bytes_(new std::atomic<uint64_t>[size_]),
        over_(new std::atomic<uint64_t>[size_]) {
    reset();
  }
  size_t size() const { return size_; }
  void add(size_t slot, uint64_t bytes) {
    hits_[slot].store(hits_[slot].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    bytes_[slot].store(bytes_[slot].load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
  }
  void add_over(size_t slot) { over_[slot].store(over_[slot].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  uint64_t hits(size_t slot) const { return hits_[slot].load(std::memory_order_relaxed); }
  uint64_t over_limit(size_t slot) const { return over_[slot].load(std::memory_order_relaxed); }
  uint64_t bytes(size_t slot) const { return bytes_[slot].load(std::memory_order_relaxed); }
  void reset() {
    for (size_t i = 0; i < size_; i++) {
      hits_[i].store(0, std::memory_order_relaxed);
      bytes_[i].store(0, std::memory_order_relaxed);
      over_[i].store(0, std::memory_order_relaxed);
    }
  }

 private:
  size_t size_;
  std::unique_ptr<std::atomic<uint64_t>[]> hits_;
  std::unique_ptr<std::atomic<uint64_t>[]> bytes_;
  std::unique_ptr<std::atomic<uint64_t>[]> over_;
};

// An IPv4 packet that is only its 5-tuple (ClassBench headers): ports present.
void tuple_packet(uint32_t src, uint32_t dst, uint32_t sport, uint32_t dport, uint32_t proto, Decoded* d);
// Rewrite only the 5-tuple of a record tuple_packet() made (the rest is the same for every tuple).
void set_tuple(uint32_t src, uint32_t dst, uint32_t sport, uint32_t dport, uint32_t proto, Decoded* d);

// Kernel-truncation kind of a decoded packet (the Truncated field's key).
uint32_t truncated_key(const Decoded& d);

class Classifier {
 public:
  explicit Classifier(std::unique_ptr<Table> table, const IndexLimits& limits = IndexLimits());

  const Table& table() const { return *table_; }
  // Bytes of the lookup index derived from the table (beside the table's own).
  size_t index_bytes() const {
    return index_->byte_size() + cuts_[0].byte_size() + cuts_[1].byte_size() + (compact_[0] ? compact_[0]->byte_size() : 0) +
           (compact_[1] ? compact_[1]->byte_size() : 0);
  }
  // Whether a family is served by cut trees (cuts.h) rather than the vector index.
  bool uses_cuts(int fam) const { return cuts_[fam == 6].usable(); }
  // The compact vector index serving a family (compact.h), or null.
  const CompactIndex* compact(int fam) const { return compact_[fam == 6].get(); }
  const FamilyCuts& cuts(int fam) const { return cuts_[fam == 6]; }
  std::vector<NamedSet>& sets() { return sets_; }
  NamedSet* find_set(const std::string& name);
  // Rate-limit state (buckets), shared by every thread that classifies.
  LimitState& limits() const { return *limits_; }

  // Classify one packet; counters (when given) are incremented for every rule
  // that matched on the way, terminal or not.
  void classify(const Decoded& d, const Meta& m, Verdict* out, Counters* counters) const;

  // Classify `count` packets, metas[i * meta_stride] giving packet i's
  // metadata (stride 0: one Meta for all). Same results as classify(); the
  // field lookups of kLanes packets are interleaved, so their memory
  // latencies overlap instead of adding up.
  void classify_batch(const Decoded* packets, size_t count, const Meta* metas, size_t meta_stride, Verdict* out,
                      Counters* counters) const;
  // 32: each lane's loads are a dependent chain, and on this Zen 4 core more
  // chains in flight kept paying up to 32 (8 -> 32: acl1_1k 12.3 -> 9.9 ns,
  // ipc1_100k 16.8 -> 13.0; docs/algorithm.md). At most FamilyCuts::kMaxLanes.
  static constexpr int kLanes = 32;

  // IPv4 5-tuples, five words each (source, destination, source port,
  // destination port, protocol; as ClassBench states headers): out[i] the
  // rule that decides tuple i, or kRuleDefault. The answers of
  // classify_batch() on tuple_packet() records with an empty Meta; when the
  // IPv4 table has no field besides these five, the keys come straight from
  // the tuples and no record is built.
  void classify_tuples(const uint32_t* tuples, size_t count, int32_t* out) const;
  bool tuple_keys() const { return tuple_keys_; }

 private:
  std::unique_ptr<Table> table_;
  std::unique_ptr<LookupIndex> index_;
  FamilyCuts cuts_[2];                        // IPv4, IPv6
  std::unique_ptr<CompactIndex> compact_[2];  // when set, it serves instead of the trees
  std::vector<uint8_t> simple_;               // per rule: terminal, no residual checks
  bool tuple_keys_ = false;                   // every IPv4 table field is one of the 5-tuple's
  std::vector<NamedSet> sets_;
  std::unique_ptr<LimitState> limits_;

  struct Lookup {
    const uint64_t* vec[kMaxDims + 1];
    const uint64_t* sum[kMaxDims + 1];
    int n;
    const Family* family;
  };
  // Up to kLanes packets of one family: through the compact index, the cut trees or the vector index (lanes()).
  void lanes_family(const Decoded* packets, const Meta* metas, size_t meta_stride, int count, int fam, const int* which,
                    Verdict* out, Counters* counters) const;
  void lanes(const Decoded* packets, const Meta* metas, size_t meta_stride, int count, int fam, const int* which, Verdict* out,
             Counters* counters) const;
  // The vector index's part of lanes(), from each dimension's class on, for
  // the table's family (`simple`: simple_, lk[q] set for decide() where the
  // rule is not simple) or a compact one (`simple` null).
  void candidates(const Family& f, const FamilyIndex& fx, uint32_t rules, const uint8_t* simple, uint32_t (*cls)[kLanes], int k,
                  uint32_t* first, Lookup* lk) const;
  void and_scans(const Family& f, uint32_t rules, const Lookup* lk, int k, uint32_t* first) const;
  // The same for up to kLanes packets through the compact index (compact.h).
  void lanes_compact(const Decoded* packets, const Meta* metas, size_t meta_stride, int count, int fam, const int* which,
                     Verdict* out, Counters* counters) const;
  void compact_candidates(const CompactIndex& ci, const uint64_t (*keys)[kLanes], int k, uint32_t* first) const;
  // After lanes_cuts() or lanes_compact(): the verdicts, or lanes() for rules that need the full scan.
  void finish_lanes(const Decoded* packets, const Meta* metas, size_t meta_stride, int count, int fam, const int* which,
                    const uint32_t* first, Verdict* out, Counters* counters) const;
  // classify_tuples() for up to FamilyCuts::kMaxLanes tuples through the cut
  // trees, or kLanes through the compact or vector index: the first
  // candidate; and tuples through records.
  void tuple_candidates(const uint32_t* tuples, int k, uint32_t* first) const;
  void tuples_through_records(const uint32_t* tuples, size_t count, int32_t* out) const;
  // The same through the family's cut trees; lanes whose first candidate
  // needs the full scan (residual checks, non-terminal actions) go on to lanes().
  void lanes_cuts(const Decoded* packets, const Meta* metas, size_t meta_stride, int count, int fam, const int* which,
                  Verdict* out, Counters* counters) const;
  // The full scan: residual checks, marks, non-terminal actions. `first`,
  // when below the rule count, is already known to be the first candidate.
  void decide(const Lookup& lk, const Decoded& d, const Meta& m, Verdict* out, Counters* counters, uint32_t first) const;
  void finish(uint32_t r, const Decoded& d, const Meta& m, Verdict* out, Counters* counters) const;
  bool residuals_hold(uint32_t ri, const RuleRec& r, const Decoded& d, const Meta& m, uint32_t mark, Counters* counters) const;
  bool interfaces_match(const ResidualRec& res, const char* name, uint8_t len) const;
  bool sets_match(const ResidualRec& res, const Decoded& d) const;
};

}  // namespace nfsieve
