// A self-contained fuzz loop for the decoder: seeded random frames (pure noise,
// and IP-shaped frames with plausible headers), each decoded from an exact-size
// heap block under AddressSanitizer for every supported link type.
// Usage: decode_fuzz ITERATIONS SEED
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../core/decode.h"

namespace {
uint64_t state;
uint32_t next() {  // splitmix64
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}
const uint32_t kLinks[] = {0, 1, 9, 50, 101, 108, 113, 228, 229, 276};
}  // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 100000;
  state = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  long malformed = 0;
  for (long i = 0; i < iterations; i++) {
    size_t len = next() % 160;
    std::vector<uint8_t> buf(len);
    for (auto& b : buf) b = static_cast<uint8_t>(next());
    if (len > 0 && (next() & 1)) {
      // Shape it like raw IP so the deeper decoders are reached.
      static const uint8_t protos[] = {0, 6, 17, 1, 58, 50, 51, 43, 44, 60, 59};
      bool v6 = next() & 1;
      buf[0] = v6 ? 0x60 : static_cast<uint8_t>(0x45 + (next() % 4 == 0 ? next() % 11 : 0));
      if (!v6 && len > 9) buf[9] = protos[next() % 11];
      if (v6 && len > 6) buf[6] = protos[next() % 11];
      if (!v6 && len > 7) {
        buf[6] &= (next() & 1) ? 0x20 : 0xff;
        buf[7] = (next() & 1) ? 0 : buf[7];
      }
      if (len > 3 && (next() & 1)) {
        size_t total = len + (next() % 16) - 8;
        buf[2] = (total >> 8) & 0xff;
        buf[3] = total & 0xff;
      }
      if (v6 && len > 5 && (next() & 1)) {
        size_t pl = len > 40 ? len - 40 : 0;
        buf[4] = pl >> 8;
        buf[5] = pl & 0xff;
      }
    }
    nfsieve::Decoded d;
    uint32_t link = (len > 0 && (next() & 1)) ? 101 : kLinks[next() % 10];
    nfsieve::decode_frame(link, buf.data(), buf.size(), &d);
    if (d.malformed) malformed++;
  }
  std::printf("decoded %ld frames, %ld malformed\n", iterations, malformed);
  return 0;
}
