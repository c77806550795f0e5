// libFuzzer target: named-set operations. Each 4-byte step of the input is
// one add, remove or lookup on an AddressSet and a SpiSet, checked against a
// plain std::set model; small value ranges force hash collisions, long
// probe runs and backward-shift deletions. A disagreement aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <tuple>
#include <vector>

#include "../core/sets.h"
#include "fuzz_input.h"

namespace {

using Key = std::tuple<int, int, std::vector<uint8_t>>;  // family, length, masked bytes

std::vector<uint8_t> masked(int family, const uint8_t* b, int length) {
  std::vector<uint8_t> out(b, b + (family == 4 ? 4 : 16));
  for (size_t i = 0; i < out.size(); i++) {
    int keep = length - static_cast<int>(i) * 8;
    out[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
  return out;
}

bool member(const std::set<Key>& model, int family, const uint8_t* b) {
  for (const Key& k : model)
    if (std::get<0>(k) == family && masked(family, b, std::get<1>(k)) == std::get<2>(k)) return true;
  return false;
}

void fail(const char* what) {
  std::fprintf(stderr, "named sets disagree with the model: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  nfsieve::AddressSet addresses;
  nfsieve::SpiSet spis;
  std::set<Key> model;
  std::set<uint32_t> spi_model;
  while (!in.empty()) {
    uint8_t op = in.u8(), x = in.u8(), y = in.u8(), z = in.u8();
    const int family = (op & 0x80) ? 6 : 4;
    uint8_t b[16] = {0};
    b[0] = family == 4 ? 10 : 0xfd;
    b[family == 4 ? 2 : 14] = x & 3;
    b[family == 4 ? 3 : 15] = y;
    const int length = family == 4 ? 24 + z % 9 : 112 + z % 17;
    const Key key(family, length, masked(family, b, length));
    switch (op % 5) {
      case 0:
        if (addresses.add(family, b, length) != model.insert(key).second) fail("add");
        break;
      case 1:
        if (addresses.remove(family, b, length) != (model.erase(key) != 0)) fail("remove");
        break;
      case 2:
        if (addresses.contains(family, b) != member(model, family, b)) fail("contains");
        break;
      case 3: {
        uint32_t spi = static_cast<uint32_t>(y) << 16 | z;
        if ((op & 0x40) ? spis.add(spi, spi) != spi_model.insert(spi).second
                        : spis.remove(spi, spi) != (spi_model.erase(spi) != 0))
          fail("spi change");
        break;
      }
      default: {
        uint32_t spi = static_cast<uint32_t>(y) << 16 | z;
        if (spis.contains(spi) != (spi_model.count(spi) != 0)) fail("spi contains");
      }
    }
    if (addresses.size() != model.size()) fail("size");
  }
  return 0;
}
