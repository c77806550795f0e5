// Named-set stress under the sanitizers: random inserts, deletes and lookups
// on AddressSet and SpiSet (and so on FlatSet, their storage), checked after
// every operation against a plain std::map model. Small key ranges force
// collisions, long probe runs and backward shifts across the table's end.
// Members carry origins (file, live) and live ones expiries, some already
// past: lookups, expire(), flush() and merge_live() are checked too.
//   sets_stress OPS SEED  ->  "checked OPS operations, N members" or exit 1
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "../core/sets.h"

using nfsieve::AddressSet;
using nfsieve::SpiSet;

// Over 60 lines: a test driver; one random operation per case, each checked against the model right there.
int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: sets_stress OPS SEED\n");
    return 2;
  }
  const long ops = std::atol(argv[1]);
  std::mt19937_64 rng(std::strtoull(argv[2], nullptr, 10));
  AddressSet addresses;
  SpiSet spis;
  using Key = std::tuple<int, int, std::vector<uint8_t>>;  // family, length, masked bytes
  struct Origins {
    uint8_t bits;
    int64_t expires;
  };
  std::map<Key, Origins> model;
  const int64_t now = nfsieve::steady_now_ms();
  const int64_t past = now - 100000, future = now + 100000000;  // far from the coarse clock's ticks
  auto matches = [&](const Origins& o) {
    return (o.bits & nfsieve::kOriginFile) || ((o.bits & nfsieve::kOriginLive) && (o.expires == 0 || o.expires > now));
  };
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
      if (std::get<0>(m.first) != family) continue;
      if (masked(family, b, std::get<1>(m.first)) == std::get<2>(m.first) && matches(m.second)) return true;
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
    const int what = rng() % 5;
    const uint8_t origin = rng() % 2 ? nfsieve::kOriginFile : nfsieve::kOriginLive;
    if (what == 0) {
      const int64_t expires = origin == nfsieve::kOriginLive ? (rng() % 3 == 0 ? 0 : rng() % 2 ? past : future) : 0;
      auto it = model.find(key);
      const bool want = it == model.end() || !(it->second.bits & origin);
      Origins& o = model[key];
      o.bits |= origin;
      if (origin == nfsieve::kOriginLive) o.expires = expires;
      if (addresses.add(family, b, length, origin, expires) != want) return std::printf("add mismatch at op %ld\n", op), 1;
    } else if (what == 1) {
      const uint8_t origins = rng() % 3 == 0 ? nfsieve::kOriginAll : origin;
      auto it = model.find(key);
      const bool want = it != model.end() && (it->second.bits & origins);
      if (want) {
        it->second.bits &= static_cast<uint8_t>(~origins);
        if (origins & nfsieve::kOriginLive) it->second.expires = 0;
        if (!it->second.bits) model.erase(it);
      }
      if (addresses.remove(family, b, length, origins) != want) return std::printf("remove mismatch at op %ld\n", op), 1;
    } else if (what == 2 && rng() % 500 == 0) {
      // Reap: the model drops live origins that ran out; the count must agree.
      size_t want = 0;
      for (auto it = model.begin(); it != model.end();) {
        Origins& o = it->second;
        if ((o.bits & nfsieve::kOriginLive) && o.expires != 0 && o.expires <= now) {
          want++;
          o.bits &= static_cast<uint8_t>(~nfsieve::kOriginLive);
          o.expires = 0;
        }
        it = o.bits ? std::next(it) : model.erase(it);
      }
      if (addresses.expire(now) != want) return std::printf("expire mismatch at op %ld\n", op), 1;
    } else if (what == 3 && rng() % 2000 == 0) {
      // A reload's copy: the live members only, into a fresh set, must match the model's live part.
      AddressSet next;
      next.merge_live(addresses, now);
      for (const auto& m : model) {
        const std::vector<uint8_t>& bytes = std::get<2>(m.first);
        const bool live = (m.second.bits & nfsieve::kOriginLive) && (m.second.expires == 0 || m.second.expires > now);
        if (live && !next.matches(std::get<0>(m.first), bytes.data(), std::get<1>(m.first)))
          return std::printf("merge_live lost a member at op %ld\n", op), 1;
      }
      std::vector<nfsieve::MemberInfo> listed;
      next.list(&listed, now);
      for (const auto& l : listed)
        if (l.origins != nfsieve::kOriginLive) return std::printf("merge_live copied a file origin at op %ld\n", op), 1;
    } else if (addresses.contains(family, b) != member(family, b)) {
      return std::printf("contains mismatch at op %ld\n", op), 1;
    }
    const uint32_t spi = static_cast<uint32_t>(rng() % 200) * 0x10000u;  // low bits equal: clustered homes
    if (rng() % 2) {
      if (spis.add(spi, spi) != spi_model.insert(spi).second) return std::printf("spi add mismatch at op %ld\n", op), 1;
    } else if (spis.remove(spi, spi) != (spi_model.erase(spi) != 0)) {
      return std::printf("spi remove mismatch at op %ld\n", op), 1;
    }
    if (spis.contains(spi ^ 0x10000u) != (spi_model.count(spi ^ 0x10000u) != 0))
      return std::printf("spi contains mismatch at op %ld\n", op), 1;
    if (addresses.size() != model.size()) return std::printf("size mismatch at op %ld\n", op), 1;
  }
  std::printf("checked %ld operations, %zu members\n", ops, model.size());
  return 0;
}
