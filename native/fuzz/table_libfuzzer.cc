// libFuzzer target: the table loader. The input is a table (its checksum is
// made right first, so mutations reach the validation behind it); a table
// that loads must then be safe to evaluate: a classifier is built on it (the
// lookup index included) and classifies a few packets of every kind.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "../core/classify.h"
#include "fuzz_input.h"

namespace {

// IPv4 UDP 500 (IKE), IPv4 ESP, IPv6 UDP 4500 and a truncated IPv4 header.
const uint8_t kIke4[] = {0x45, 0, 0, 36,  0, 0,   0, 0,  64, 17, 0, 0, 10, 0, 0, 1, 10, 0,
                         0,    2, 1, 244, 1, 244, 0, 16, 0,  0,  1, 2, 3,  4, 5, 6, 7,  8};
const uint8_t kEsp4[] = {0x45, 0, 0, 28, 0, 0, 0, 0, 64, 50, 0, 0, 10, 1, 0, 1, 10, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 1};
const uint8_t kUdp6[] = {0x60, 0, 0, 0, 0, 8, 17, 64, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0,    0,    0,    0,    0, 0, 0, 1,
                         0xfd, 0, 0, 0, 0, 0, 0,  0,  0,    0, 0, 0, 0, 0, 0, 2, 0x11, 0x94, 0x11, 0x94, 0, 8, 0, 0};
const uint8_t kShort[] = {0x45, 0, 0, 20, 0, 0};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> t = fuzz::with_crc(data, size);
  std::string error;
  std::unique_ptr<nfsieve::Table> table = nfsieve::Table::load(t.data(), t.size(), &error);
  if (!table) return 0;
  nfsieve::IndexLimits limits;  // budgets small enough for thousands of loads a second
  limits.work = 1u << 16;
  limits.memory = 1u << 20;
  nfsieve::Classifier c(std::move(table), limits);
  nfsieve::Counters counters(c.table().rule_count());
  const uint8_t* packets[] = {kIke4, kEsp4, kUdp6, kShort};
  const size_t sizes[] = {sizeof kIke4, sizeof kEsp4, sizeof kUdp6, sizeof kShort};
  nfsieve::Meta m;
  m.in = "eth0";
  m.in_len = 4;
  m.ctstate = 2;
  for (int i = 0; i < 4; i++) {
    nfsieve::Decoded d;
    nfsieve::decode_ip(packets[i], sizes[i], &d);
    nfsieve::Verdict v;
    c.classify(d, m, &v, &counters);
  }
  return 0;
}
