// libFuzzer entry point (clang): the first byte picks the link type.
#include <cstddef>
#include <cstdint>

#include "../core/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const uint32_t links[] = {0, 1, 9, 50, 101, 108, 113, 228, 229, 276};
  if (size == 0) return 0;
  nfsieve::Decoded d;
  nfsieve::decode_frame(links[data[0] % 10], data + 1, size - 1, &d);
  return 0;
}
