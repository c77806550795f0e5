// Decision table, versions 1 and 2 (2 adds rate limits): loading and complete validation.
//
// The table comes from the TypeScript compiler (src/compile/format.ts) as one
// little-endian blob; docs/table-format.md is the specification. Before the
// first lookup, Table::load checks the magic, version, size and CRC-32, then
// every offset, count, index and ordering the evaluator will rely on, so that
// evaluation itself needs no checks: a corrupt or hostile table is refused
// with a message, never read out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "wire.h"

namespace nfsieve {

constexpr uint32_t kTableMagic = 0x5153464e;  // "NFSQ"
constexpr uint16_t kTableVersion = 2;         // written when the table has limits
constexpr uint16_t kTableVersionPlain = 1;    // no limits section
constexpr uint32_t kHeaderSize = sizeof(wire::TableHeader);
constexpr int kMaxDims = 26;

enum FieldId : uint8_t {
  kFieldSrc = 1,
  kFieldDst,
  kFieldProto,
  kFieldIpProto,
  kFieldSport,
  kFieldDport,
  kFieldSpi,
  kFieldAhSpi,
  kFieldIcmp,
  kFieldIkeVersion,
  kFieldIkeExchange,
  kFieldIkeFlags,
  kFieldNatt,
  kFieldFragment,
  kFieldCtState,
  kFieldMalformed,
  kFieldLength,
  kFieldTruncated,
  kFieldNfProto,
  kFieldL4Avail,
  kFieldIkeInitial,
  kFieldIkeCookie,
  kFieldNftProto,
  kFieldNftSport,
  kFieldNftDport,
  kFieldLast = kFieldNftDport
};
static_assert(kFieldLast <= kMaxDims, "a table may use every field once");

enum ActionCode : uint8_t { kActAccept = 0, kActDrop, kActReject, kActQueue, kActContinue, kActSkip, kActRepeat };
enum ResidualCode : uint8_t { kResMark = 1, kResIn, kResOut, kResSetSrc, kResSetDst, kResSetSpi, kResSetAhSpi, kResLimit };
enum LimitPer : uint8_t { kLimitPerRule = 0, kLimitPerSource = 1 };
constexpr uint32_t kMaxSources = 1u << 24;

struct RuleRec {
  uint8_t action;
  uint8_t flags;  // wire::kRuleFlag* (bit 0: sets the mark)
  uint16_t queue;
  uint32_t mark_value;
  uint32_t mark_mask;
  uint32_t skip_to;
  uint32_t residual_start;
  uint16_t residual_count;
  uint16_t reserved;
};
static_assert(sizeof(RuleRec) == 24, "rule record");

// A rule whose match ends the first-match scan: no residual checks, a terminal action.
inline bool ends_scan(const RuleRec& r) { return r.residual_count == 0 && r.action != kActContinue && r.action != kActSkip; }

struct ResidualRec {
  uint8_t kind;
  uint8_t negate;
  uint16_t reserved;
  uint32_t a;
  uint32_t b;
  uint32_t reserved2;
};
static_assert(sizeof(ResidualRec) == 16, "residual record");

// A rate limit (docs/table-format.md): `rate` tokens per `period_ns`, at most `burst` saved.
struct LimitRec {
  uint8_t per;      // LimitPer
  uint8_t prefix4;  // per source: bits of an IPv4 source that make its key (1-32)
  uint8_t prefix6;  // per source: likewise for IPv6 (1-128)
  uint8_t reserved;
  uint32_t rate;
  uint32_t burst;
  uint32_t max_sources;  // per source: buckets kept (least recently used evicted)
  uint64_t period_ns;
};
static_assert(sizeof(LimitRec) == 24, "limit record");

struct Dim {
  uint8_t field;
  bool wide;  // 128-bit keys stored as (hi, lo) pairs
  uint32_t boundary_count;
  const uint64_t* boundaries;  // boundary_count keys (2 words each when wide)
  const uint32_t* classes;     // boundary_count + 1 vector indices
  const uint64_t* vectors;     // vector_count * words
  const uint64_t* summaries;   // vector_count * summary_words: bit b = block b non-zero
  uint32_t vector_count;
};

struct Family {
  uint32_t words = 0;
  uint32_t summary_words = 0;  // ceil(words / 64)
  const uint64_t* base = nullptr;
  const uint64_t* base_summary = nullptr;
  int dim_count = 0;
  Dim dims[kMaxDims];
};

struct SetElementsView {
  uint8_t kind;  // 1 address, 2 spi
  std::string name;
  uint32_t count;
  const uint8_t* elements;  // 20-byte address elements or 8-byte SPI ranges
};

class Table {
 public:
  // Copies and validates the bytes. On failure returns null and sets *error.
  static std::unique_ptr<Table> load(const uint8_t* data, size_t size, std::string* error);

  uint32_t rule_count() const { return rule_count_; }
  uint8_t default_verdict() const { return default_verdict_; }
  uint8_t flags() const { return flags_; }
  const RuleRec& rule(uint32_t i) const { return rules_[i]; }
  const ResidualRec& residual(uint32_t i) const { return residuals_[i]; }
  uint32_t ref(uint32_t i) const { return refs_[i]; }
  const std::string& string_at(uint32_t i) const { return strings_[i]; }
  const Family& family(int fam) const { return fam == 4 ? fam4_ : fam6_; }
  const std::vector<SetElementsView>& sets() const { return sets_; }
  uint32_t limit_count() const { return limit_count_; }
  const LimitRec& limit(uint32_t i) const { return limits_[i]; }
  // The rule whose last residual is limit i.
  uint32_t limit_rule(uint32_t i) const { return limit_rules_[i]; }
  size_t byte_size() const { return size_; }

 private:
  std::unique_ptr<uint64_t[]> storage_;  // the table, 8-byte aligned (not zero-filled first: it is copied over)
  size_t size_ = 0;
  uint32_t rule_count_ = 0;
  uint8_t default_verdict_ = 0;
  uint8_t flags_ = 0;
  const RuleRec* rules_ = nullptr;
  const ResidualRec* residuals_ = nullptr;
  const uint32_t* refs_ = nullptr;
  const LimitRec* limits_ = nullptr;
  uint32_t limit_count_ = 0;
  std::vector<uint32_t> limit_rules_;
  std::vector<std::string> strings_;
  std::vector<SetElementsView> sets_;
  Family fam4_, fam6_;

  friend class TableLoader;
};

uint32_t crc32(const uint8_t* data, size_t size);

}  // namespace nfsieve
