// The batched lookup alone, on a compiled table and a header trace written by
// bench/lookup-dump.ts: loads the table (index and cut trees as the addon
// would), checks every answer against the linear scan's, then runs PASSES
// passes over the trace through classify_tuples(), as classifyTuples does. Under
// callgrind only run_passes() is counted, so instructions and cache misses
// per packet are those of the lookup:
//   g++ -O3 -g -std=c++17 -Inative/core bench/native/lookup_driver.cc
//   native/core/{decode,linklayer,table,sets,classify,lanes,index,cuts,splits,covered,compact,limit}.cc -o /tmp/lookup_driver
//   /tmp/lookup_driver DIR/acl1_10k classbench                      # ns/packet (best pass), build ms, bytes
//   bench/native/lookup-cg.sh DIR/acl1_10k classbench              # instructions, L1 misses per packet
// Pin it (taskset -c 0) when comparing timings: on a VM one vCPU can run lookups
// 1.5x slower than the other for minutes (docs/algorithm.md, "The same core for both").
// Options (environment): CUTS=off|auto|always, CUTS_MEMORY=bytes, CUTS_WORK=rule visits, TREE=cuts|splits, GROUP_INDEX=off,
// ADDRESS_FILTERS=off,
// INDEX_WORK=vector words, INDEX_MEMORY=bytes (the vector index's budgets, index.h),
// NFSIEVE_SIMD=scalar, PASSES=n. The last line printed names the IPv4 structure and, where the miss
// model chose (cuts.h), its costs: model trees/vector.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "classify.h"

using namespace nfsieve;

namespace {

std::vector<uint8_t> read_all(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

IndexLimits limits_from_env() {
  IndexLimits l;
  const char* c = std::getenv("CUTS");
  if (c && !std::strcmp(c, "off")) l.cuts = IndexLimits::kCutsOff;
  if (c && !std::strcmp(c, "always")) l.cuts = IndexLimits::kCutsAlways;
  const char* t = std::getenv("TREE");
  if (t && !std::strcmp(t, "cuts")) l.tree = IndexLimits::kTreeCuts;
  if (t && !std::strcmp(t, "splits")) l.tree = IndexLimits::kTreeSplits;
  if (const char* m = std::getenv("CUTS_MEMORY")) l.cuts_memory = std::strtoull(m, nullptr, 10);
  if (const char* w = std::getenv("CUTS_WORK")) l.cuts_work = std::strtoull(w, nullptr, 10);
  if (const char* w = std::getenv("INDEX_WORK")) l.work = std::strtoull(w, nullptr, 10);
  if (const char* m = std::getenv("INDEX_MEMORY")) l.memory = std::strtoull(m, nullptr, 10);
  if (const char* s = std::getenv("NFSIEVE_SIMD")) l.simd = std::strcmp(s, "scalar") != 0;
  if (const char* g = std::getenv("GROUP_INDEX")) l.group_index = std::strcmp(g, "off") != 0;
  if (const char* a = std::getenv("ADDRESS_FILTERS")) l.address_filters = std::strcmp(a, "off") != 0;
  return l;
}

__attribute__((noinline)) void run_passes(const Classifier& c, const uint32_t* t, size_t n, int32_t* out, int passes) {
  for (int p = 0; p < passes; p++) c.classify_tuples(t, n, out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: lookup_driver DIR/SET TRACE\n");
    return 2;
  }
  const std::string set = argv[1], trace = argv[2];
  const std::vector<uint8_t> bytes = read_all(set + ".table");
  const std::vector<uint8_t> tb = read_all(set + "." + trace + ".tuples"), wb = read_all(set + "." + trace + ".want");
  std::string err;
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Table> table = Table::load(bytes.data(), bytes.size(), &err);
  if (!table) {
    std::fprintf(stderr, "table: %s\n", err.c_str());
    return 1;
  }
  Classifier c(std::move(table), limits_from_env());
  const double build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const size_t n = tb.size() / 20;
  const uint32_t* tuples = reinterpret_cast<const uint32_t*>(tb.data());
  const int32_t* want = reinterpret_cast<const int32_t*>(wb.data());
  std::vector<int32_t> got(n);
  const int passes = std::getenv("PASSES") ? std::atoi(std::getenv("PASSES")) : 5;
  double best = 1e30;
  for (int p = 0; p < passes; p++) {
    auto a = std::chrono::steady_clock::now();
    run_passes(c, tuples, n, got.data(), 1);
    best = std::min(best, std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - a).count() / n);
  }
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++) wrong += got[i] != want[i];
  std::printf("%s %s: %zu packets, %.1f ns/packet (best of %d), load %.1f ms, index %.2f MiB, cuts v4 %d, wrong %zu\n",
              set.c_str(), trace.c_str(), n, best, passes, build_ms, c.index_bytes() / 1048576.0, c.uses_cuts(4), wrong);
  const FamilyCuts& fc = c.cuts(4);
  std::printf(
      "structure v4: %s%s, %d group indexes, %d split groups, %u wide splits, %d address filters, %u rules covered, model miss "
      "%.0f/%.0f hit "
      "%.0f/%.0f\n",
      c.compact(4)       ? "compact vector index"
      : !fc.usable()     ? "vector index"
      : fc.split_trees() ? "split tree"
                         : "equal cuts",
      fc.usable() && fc.cut_short() ? " (cut short)" : "", fc.usable() ? fc.compact_groups() : 0,
      fc.usable() ? fc.split_groups() : 0, fc.usable() ? fc.wide_splits() : 0u, fc.usable() ? fc.address_filters() : 0,
      fc.covered(), fc.model_cost(), fc.fallback_cost(), fc.hit_cost(), fc.fallback_hit_cost());
  return wrong ? 1 : 0;
}
