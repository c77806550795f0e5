#include "packet_tx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace nfsieve {

long send_frames(const std::string& ifname, const std::vector<std::pair<const uint8_t*, size_t>>& frames, long repeat,
                 std::string* error) {
  unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) {
    *error = "no interface named '" + ifname + "' in this network namespace";
    return -1;
  }
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("cannot open a packet socket: ") + strerror(errno);
    return -1;
  }
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(index);
  to.sll_halen = ETH_ALEN;
  long sent = 0;
  for (long r = 0; r < repeat; r++) {
    for (const auto& f : frames) {
      if (f.second < 14) continue;
      std::memcpy(to.sll_addr, f.first, ETH_ALEN);
      for (int tries = 0;; tries++) {
        ssize_t n = sendto(fd, f.first, f.second, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
        if (n >= 0) {
          sent++;
          break;
        }
        if ((errno == ENOBUFS || errno == EAGAIN) && tries < 1000) {
          usleep(50);
          continue;
        }
        *error = std::string("sending on ") + ifname + ": " + strerror(errno);
        close(fd);
        return -1;
      }
    }
  }
  close(fd);
  return sent;
}

}  // namespace nfsieve
