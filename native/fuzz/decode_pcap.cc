// Decode every frame of classic pcap files with the sanitized core and print
// one line per frame: "file index family proto malformed". A tiny pcap reader
// of its own, so that this driver depends on nothing but the core.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "../core/decode.h"

static uint32_t rd32(const uint8_t* p, bool swap) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swap ? __builtin_bswap32(v) : v;
}

int main(int argc, char** argv) {
  int status = 0;
  for (int f = 1; f < argc; f++) {
    std::ifstream in(argv[f], std::ios::binary);
    std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (file.size() < 24) {
      std::fprintf(stderr, "%s: too short\n", argv[f]);
      status = 1;
      continue;
    }
    uint32_t magic;
    std::memcpy(&magic, file.data(), 4);
    bool swap = magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1;
    uint32_t link = rd32(file.data() + 20, swap) & 0xffff;
    size_t at = 24;
    for (int index = 0; at + 16 <= file.size(); index++) {
      uint32_t caplen = rd32(file.data() + at + 8, swap);
      if (caplen > file.size() - at - 16) {
        std::fprintf(stderr, "%s: truncated record\n", argv[f]);
        status = 1;
        break;
      }
      // Copy the frame into an exact-size heap block so ASan sees any over-read.
      std::vector<uint8_t> frame(file.begin() + at + 16, file.begin() + at + 16 + caplen);
      nfsieve::Decoded d;
      nfsieve::decode_frame(link, frame.data(), frame.size(), &d);
      std::printf("%s %d %u %u %s\n", argv[f], index, d.family, d.proto,
                  d.malformed ? nfsieve::malformed_name(d.malformed) : "-");
      at += 16 + caplen;
    }
  }
  return status;
}
