// Sending crafted link-layer frames on an interface (AF_PACKET): how the demo,
// the benchmarks and the kernel tests put exact bytes on a veth pair,
// truncated and malformed headers included, which the IP stack would refuse
// to build. Runs in the caller's network namespace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nfsieve {

// Send each frame (a full Ethernet frame) out of `ifname`, `repeat` times over.
// Returns the number sent, or -1 with *error.
long send_frames(const std::string& ifname, const std::vector<std::pair<const uint8_t*, size_t>>& frames, long repeat,
                 std::string* error);

}  // namespace nfsieve
