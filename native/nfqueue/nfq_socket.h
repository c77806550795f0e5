// nfnetlink_queue spoken directly over an AF_NETLINK / NETLINK_NETFILTER
// socket, from the kernel UAPI headers: no libnetfilter_queue, no libmnl.
//
// One NfqSocket serves one queue number: it binds the queue, sets copy mode,
// copy range, queue length and flags, receives packets in batches (recvmmsg)
// and sends verdicts, batched (NFQNL_MSG_VERDICT_BATCH) over runs of equal
// verdicts and single otherwise, several netlink messages per sendmsg.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/wire.h"

namespace nfsieve {

struct QueueConfig {
  uint16_t queue = 0;
  uint32_t copy_range = wire::kQueueCopyRange;  // NFQNL_COPY_PACKET range
  uint32_t max_len = wire::kQueueMaxLen;        // NFQA_CFG_QUEUE_MAXLEN
  uint32_t rcvbuf = wire::kQueueRcvBuf;         // socket receive buffer (SO_RCVBUFFORCE, else SO_RCVBUF)
  bool fail_open = false;                       // NFQA_CFG_F_FAIL_OPEN
  bool conntrack = false;                       // NFQA_CFG_F_CONNTRACK
  bool gso = wire::kQueueGso != 0;              // NFQA_CFG_F_GSO
};

// One queued packet as the kernel handed it over.
struct QueuedPacket {
  uint32_t id;
  const uint8_t* payload;
  uint32_t payload_len;   // bytes we got (at most the copy range)
  uint32_t original_len;  // NFQA_CAP_LEN when truncated, else payload_len
  uint32_t mark;
  uint32_t indev;  // 0 when absent
  uint32_t outdev;
  int32_t ct_info;  // enum ip_conntrack_info, -1 when absent
  uint16_t hw_protocol;
};

// Verdict codes as netfilter defines them (NF_DROP, NF_ACCEPT, NF_QUEUE, NF_REPEAT).
enum : uint32_t {
  kNfDrop = wire::kNfVerdictDrop,
  kNfAccept = wire::kNfVerdictAccept,
  kNfQueue = wire::kNfVerdictQueue,
  kNfRepeat = wire::kNfVerdictRepeat
};

struct VerdictOut {
  uint32_t id;
  uint32_t verdict;  // NF_* | (queue << 16) for NF_QUEUE
  bool set_mark;
  uint32_t mark;
};

class NfqSocket {
 public:
  NfqSocket() = default;
  ~NfqSocket();
  NfqSocket(const NfqSocket&) = delete;
  NfqSocket& operator=(const NfqSocket&) = delete;

  // Open, bind and configure. On failure returns false with a message naming the queue.
  // A kernel that cannot attach conntrack information (no nf_conntrack_netlink)
  // is not a failure: conntrack_available() then says so.
  bool open(const QueueConfig& config, std::string* error);
  bool conntrack_available() const { return conntrack_ok_; }
  void close();
  int fd() const { return fd_; }

  // Wait up to timeout_ms for packets (0: do not wait), then take up to max
  // of them (one per datagram, recvmmsg; max at most wire::kQueueMaxBatch).
  // Returns the count, 0 on timeout, -errno on error (-ENOBUFS when the
  // kernel had to drop: the caller counts it and goes on).
  int receive(std::vector<QueuedPacket>* out, int max, int timeout_ms);

  // Verdicts the kernel refused since the last call (its error answers, read
  // by receive()); refused_errno() is the error of the last of them.
  int refused_errno() const { return refused_errno_; }
  uint64_t take_refused() {
    uint64_t n = refused_;
    refused_ = 0;
    return n;
  }

  // Send verdicts for packets in the order received: runs of the same verdict
  // without marks become one batch verdict. Returns 0 or -errno.
  int send_verdicts(const std::vector<VerdictOut>& verdicts);

  // First step of a clean stop: maximum queue length 0 with fail-open, so
  // the kernel stops queueing (new packets pass, as they will once the queue
  // is unbound with --queue-bypass) while we answer what is already queued.
  void stop_queueing(const QueueConfig& config);

  // Unbind the queue (packets still queued in the kernel are then dropped by it).
  void unbind();

 private:
  int fd_ = -1;
  uint16_t queue_ = 0;
  uint32_t seq_ = 1;
  bool conntrack_ok_ = false;
  int last_errno_ = 0;
  uint64_t refused_ = 0;
  int refused_errno_ = 0;
  int timeout_ms_ = -1;                   // SO_RCVTIMEO in force (-1: not set yet)
  std::vector<std::vector<uint8_t>> rx_;  // one buffer per datagram slot
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_;
  std::vector<uint8_t> tx_;

  bool request(const std::vector<uint8_t>& msg, std::string* error);
  int wait_flags(int timeout_ms);
  // Bind the queue and set copy mode, length and flags in one config message.
  bool bind_and_configure(const QueueConfig& c, std::string* error);
};

// Kernel view of the queues: /proc/net/netfilter/nfnetlink_queue.
struct KernelQueueStats {
  bool present = false;
  uint32_t queue_total = 0, copy_mode = 0, copy_range = 0, queue_dropped = 0, user_dropped = 0, id_sequence = 0;
};
KernelQueueStats kernel_queue_stats(uint16_t queue);

}  // namespace nfsieve
