// Reading a libFuzzer input as a stream of small values, shared by the
// fuzz targets: every read past the end yields zeros, so any byte string
// is a valid input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/table.h"

namespace fuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ >= end_; }
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  uint8_t u8() { return p_ < end_ ? *p_++ : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | u8() << 8); }
  uint32_t u32() { return static_cast<uint32_t>(u16() | static_cast<uint32_t>(u16()) << 16); }
  // The next n bytes (fewer at the end).
  const uint8_t* take(size_t n, size_t* got) {
    *got = n < left() ? n : left();
    const uint8_t* at = p_;
    p_ += *got;
    return at;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Offset of the table's CRC-32 and of the bytes it covers (docs/table-format.md).
constexpr size_t kCrcOffset = 12;
constexpr size_t kCrcFrom = 16;

// A copy of a table with its checksum made right, so that mutations reach
// the validation behind the checksum instead of stopping at it.
inline std::vector<uint8_t> with_crc(const uint8_t* data, size_t size) {
  std::vector<uint8_t> t(data, data + size);
  if (size >= kCrcFrom) {
    uint32_t c = nfsieve::crc32(t.data() + kCrcFrom, size - kCrcFrom);
    std::memcpy(t.data() + kCrcOffset, &c, 4);  // little-endian host (x86, arm64)
  }
  return t;
}

}  // namespace fuzz
