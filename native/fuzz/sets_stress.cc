// Named-set stress under the sanitizers: random inserts, deletes and lookups
// on AddressSet and SpiSet (and so on FlatSet, their storage), checked after
// every operation against a plain std::set model. Small key ranges force
// collisions, long probe runs and backward shifts across the table's end.
//   sets_stress OPS SEED  ->  "checked OPS operations, N members" or exit 1
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <tuple>

#include "../core/sets.h"

using nfsieve::AddressSet;
using nfsieve::SpiSet;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: sets_stress OPS SEED\n");
    return 2;
  }
  const long ops = std::atol(argv[1]);
  std::mt19937_64 rng(std::strtoull(argv[2], nullptr, 10));
  AddressSet addresses;
  SpiSet spis;
  std::set<std::tuple<int, int, std::vector<uint8_t>>> model;  // family, length, masked bytes
  std::set<uint32_t> spi_model;
  auto masked = [](int family, const uint8_t* b, int length) {
    std::vector<uint8_t> out(b, b + (family == 4 ? 4 : 16));
    for (size_t i = 0; i < out.size(); i++) {
      int keep = length - int(i) * 8;
      out[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : uint8_t(0xff << (8 - keep));
    }
    return out;
  };
  auto member = [&](int family, const uint8_t* b) {
    for (const auto& m : model) {
      if (std::get<0>(m) != family) continue;
      if (masked(family, b, std::get<1>(m)) == std::get<2>(m)) return true;
    }
    return false;
  };
  for (long op = 0; op < ops; op++) {
    const int family = rng() % 4 == 0 ? 6 : 4;
    uint8_t b[16] = {0};
    // Few distinct values: 10.0.x.y / fd00::x:y with small x, y.
    b[0] = family == 4 ? 10 : 0xfd;
    b[family == 4 ? 2 : 14] = rng() % 4;
    b[family == 4 ? 3 : 15] = rng() % 64;
    const int length = family == 4 ? (rng() % 3 == 0 ? 24 + rng() % 9 : 32) : (rng() % 3 == 0 ? 112 + rng() % 17 : 128);
    const auto key = std::make_tuple(family, length, masked(family, b, length));
    const int what = rng() % 3;
    if (what == 0) {
      bool want = model.insert(key).second;
      if (addresses.add(family, b, length) != want) return std::printf("add mismatch at op %ld\n", op), 1;
    } else if (what == 1) {
      bool want = model.erase(key) != 0;
      if (addresses.remove(family, b, length) != want) return std::printf("remove mismatch at op %ld\n", op), 1;
    } else if (addresses.contains(family, b) != member(family, b)) {
      return std::printf("contains mismatch at op %ld\n", op), 1;
    }
    const uint32_t spi = static_cast<uint32_t>(rng() % 200) * 0x10000u;  // low bits equal: clustered homes
    if (rng() % 2) {
      if (spis.add(spi, spi) != spi_model.insert(spi).second) return std::printf("spi add mismatch at op %ld\n", op), 1;
    } else if (spis.remove(spi, spi) != (spi_model.erase(spi) != 0)) {
      return std::printf("spi remove mismatch at op %ld\n", op), 1;
    }
    if (spis.contains(spi ^ 0x10000u) != (spi_model.count(spi ^ 0x10000u) != 0)) return std::printf("spi contains mismatch at op %ld\n", op), 1;
    if (addresses.size() != model.size()) return std::printf("size mismatch at op %ld\n", op), 1;
  }
  std::printf("checked %ld operations, %zu members\n", ops, model.size());
  return 0;
}
