// libFuzzer target: classification. The input is a table (u32 length, then
// the table, its checksum made right) and packets (u8 length, the IP bytes,
// then metadata bytes). When the table loads, every packet is classified
// three ways that must agree: one at a time through the lookup index, in a
// batch through the interleaved lanes, and one at a time by a classifier
// without pre-combination (per-field vectors ANDed rule by rule). Rate limits
// keep state, so each way has a classifier of its own and every packet the
// same clock. A disagreement aborts, and libFuzzer keeps the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "../core/classify.h"
#include "fuzz_input.h"

namespace {

constexpr size_t kMaxPackets = 24;
constexpr uint64_t kMaxFuzzSources = 1 << 16;
const char* const kIfnames[] = {"eth0", "eth1", "ipsec0", "lo"};

bool same(const nfsieve::Verdict& a, const nfsieve::Verdict& b) {
  return a.rule == b.rule && a.verdict == b.verdict && a.mark_set == b.mark_set && a.queue == b.queue &&
         (!a.mark_set || a.mark == b.mark);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  fuzz::Input in(data, size);
  size_t got = 0;
  const uint8_t* tbytes = in.take(in.u32() % (1u << 20), &got);
  std::vector<uint8_t> t = fuzz::with_crc(tbytes, got);
  std::string error;
  std::unique_ptr<nfsieve::Table> indexed = nfsieve::Table::load(t.data(), t.size(), &error);
  if (!indexed) return 0;
  // A valid table may ask for up to 2^24 per-source buckets (about 1 GB, made
  // at load, three times here): a legitimate size, not a fault, and past
  // libFuzzer's memory limit. Fuzz the lookup on tables of modest limits.
  uint64_t sources = 0;
  for (uint32_t i = 0; i < indexed->limit_count(); i++)
    if (indexed->limit(i).per == nfsieve::kLimitPerSource) sources += indexed->limit(i).max_sources;
  if (sources > kMaxFuzzSources) return 0;
  std::unique_ptr<nfsieve::Table> batched = nfsieve::Table::load(t.data(), t.size(), &error);
  std::unique_ptr<nfsieve::Table> plain = nfsieve::Table::load(t.data(), t.size(), &error);
  nfsieve::IndexLimits limits;  // pre-combination stopped early or run further, small either way
  limits.work = (data[0] & 1) ? 1u << 10 : 1u << 16;
  limits.memory = 1u << 20;
  // Cut trees whatever the rule count, sometimes cut short, AVX2 or scalar
  // leaf scans; equal cuts, a split tree, or the choice from the rule set.
  if (data[0] & 2) limits.cuts = nfsieve::IndexLimits::kCutsAlways;
  if (data[0] & 4) limits.cuts_memory = 256;
  limits.simd = !(data[0] & 8);
  if (data[0] & 16) limits.tree = (data[0] & 32) ? nfsieve::IndexLimits::kTreeSplits : nfsieve::IndexLimits::kTreeCuts;
  // Trees out of work: cut short, then kept or dropped by the miss and hit models (cuts.h).
  if (data[0] & 64) limits.cuts_work = 64;
  // Equal cuts with a tree for every address group, or (the default) the group wide in both addresses through its vector index.
  if (data[0] & 128) limits.group_index = false;
  // Split trees walked with AVX2 where the CPU has AVX-512 too (the bit above only matters to equal cuts).
  limits.avx512 = !(data[0] & 128);
  // Every group small in an address walked, without its address-block map.
  if ((data[0] & 129) == 1) limits.address_filters = false;
  nfsieve::Classifier fast(std::move(indexed), limits);
  nfsieve::Classifier lanes(std::move(batched), limits);
  // The plainest way the core has: per-field classes, their vectors ANDed rule
  // by rule in table order; no pre-combination, no cut trees, scalar.
  nfsieve::IndexLimits none;
  none.combine = false;
  none.cuts = nfsieve::IndexLimits::kCutsOff;
  none.simd = false;
  nfsieve::Classifier slow(std::move(plain), none);
  std::vector<nfsieve::Decoded> packets;
  std::vector<nfsieve::Meta> metas;
  while (!in.empty() && packets.size() < kMaxPackets) {
    size_t len = 0;
    const uint8_t* p = in.take(in.u8(), &len);
    nfsieve::Decoded d;
    nfsieve::decode_ip(p, len, &d);
    packets.push_back(d);
    nfsieve::Meta m;
    uint8_t bits = in.u8();
    m.in = kIfnames[bits & 3];
    m.in_len = static_cast<uint8_t>(std::string(m.in).size());
    m.out = kIfnames[(bits >> 2) & 3];
    m.out_len = static_cast<uint8_t>(std::string(m.out).size());
    m.ctstate = static_cast<uint8_t>((bits >> 4) % 6);
    m.mark = (bits & 0x80) ? in.u32() : 0;
    m.now_ns = 1000000000ull * (1 + packets.size() / 8);  // a few packets per instant: buckets drain and refill
    metas.push_back(m);
  }
  std::vector<nfsieve::Verdict> batch(packets.size());
  lanes.classify_batch(packets.data(), packets.size(), metas.data(), 1, batch.data(), nullptr);
  for (size_t i = 0; i < packets.size(); i++) {
    nfsieve::Verdict one, ref;
    fast.classify(packets[i], metas[i], &one, nullptr);
    slow.classify(packets[i], metas[i], &ref, nullptr);
    if (!same(one, ref) || !same(batch[i], ref)) {
      std::fprintf(stderr, "packet %zu: index rule %d, lanes rule %d, plain rule %d\n", i, one.rule, batch[i].rule, ref.rule);
      std::abort();
    }
  }
  return 0;
}
