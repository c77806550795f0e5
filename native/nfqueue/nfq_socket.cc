#include "nfq_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <poll.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nfsieve {
namespace {

constexpr size_t kAlign = 4;
inline size_t align4(size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

// Appends netlink messages to a byte buffer.
class MessageWriter {
 public:
  explicit MessageWriter(std::vector<uint8_t>* buf) : buf_(buf) {}

  void begin(uint16_t nfq_type, uint16_t flags, uint32_t seq, uint16_t queue) {
    start_ = buf_->size();
    nlmsghdr h{};
    h.nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_QUEUE << 8) | nfq_type);
    h.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    h.nlmsg_seq = seq;
    put(&h, sizeof(h));
    nfgenmsg g{};
    g.nfgen_family = AF_UNSPEC;
    g.version = NFNETLINK_V0;
    g.res_id = htons(queue);
    put(&g, sizeof(g));
  }

  void attr(uint16_t type, const void* data, size_t len) {
    nlattr a{};
    a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    a.nla_type = type;
    put(&a, sizeof(a));
    put(data, len);
    buf_->resize(align4(buf_->size()), 0);
  }

  void attr_be32(uint16_t type, uint32_t v) {
    uint32_t be = htonl(v);
    attr(type, &be, 4);
  }

  void end() {
    uint32_t len = static_cast<uint32_t>(buf_->size() - start_);
    std::memcpy(buf_->data() + start_, &len, 4);
  }

 private:
  std::vector<uint8_t>* buf_;
  size_t start_ = 0;
  void put(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    buf_->insert(buf_->end(), b, b + n);
  }
};

inline uint32_t be32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return ntohl(v);
}

}  // namespace

NfqSocket::~NfqSocket() { close(); }

void NfqSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool NfqSocket::request(const std::vector<uint8_t>& msg, std::string* error) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    *error = std::string("sending to nfnetlink: ") + strerror(errno);
    return false;
  }
  // Wait for the acknowledgement of this request (skipping anything else).
  uint32_t seq;
  std::memcpy(&seq, msg.data() + 8, 4);
  std::vector<uint8_t> buf(8192);
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) {
      *error = "no answer from nfnetlink_queue (is the nfnetlink_queue module loaded?)";
      return false;
    }
    ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;
      *error = std::string("receiving from nfnetlink: ") + strerror(errno);
      return false;
    }
    for (size_t off = 0; off + sizeof(nlmsghdr) <= static_cast<size_t>(n);) {
      nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf.data() + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > static_cast<size_t>(n) - off) break;
      off += NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq != seq || h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) continue;
      const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      if (e->error == 0) return true;
      int err = -e->error;
      last_errno_ = err;
      if (err == EPERM) {
        *error = "queue " + std::to_string(queue_) + " is bound by another process (EPERM): stop it, or use another --queue";
      } else {
        *error = "configuring queue " + std::to_string(queue_) + ": " + strerror(err);
      }
      return false;
    }
  }
}

bool NfqSocket::bind_and_configure(const QueueConfig& c, std::string* error) {
  std::vector<uint8_t> msg;
  MessageWriter w(&msg);
  auto send = [&](auto fill) {
    msg.clear();
    w.begin(NFQNL_MSG_CONFIG, NLM_F_ACK, seq_++, c.queue);
    fill();
    w.end();
    return request(msg, error);
  };
  // Bind and configure in ONE message. The kernel creates the instance on
  // BIND with copy mode NONE, and until PARAMS arrives every packet sent to
  // the queue is dropped (nfqnl_enqueue_packet returns -EINVAL, which
  // --queue-bypass does not cover: it bypasses only when no instance exists).
  // nfqnl_recv_config applies CMD, PARAMS, QUEUE_MAXLEN and FLAGS of one
  // message in that order within one call, so that window shrinks from a
  // netlink round trip per message to a few instructions. The flags are
  // validated before the bind: a kernel without NFQUEUE conntrack glue
  // refuses the whole message (EOPNOTSUPP), which is then sent again
  // without the conntrack flag.
  nfqnl_msg_config_cmd bind_cmd{NFQNL_CFG_CMD_BIND, 0, 0};
  nfqnl_msg_config_params params{htonl(c.copy_range), NFQNL_COPY_PACKET};
  const uint32_t mask = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_CONNTRACK | NFQA_CFG_F_GSO;
  uint32_t flags =
      (c.fail_open ? NFQA_CFG_F_FAIL_OPEN : 0) | (c.conntrack ? NFQA_CFG_F_CONNTRACK : 0) | (c.gso ? NFQA_CFG_F_GSO : 0);
  auto bind_and_configure = [&] {
    w.attr(NFQA_CFG_CMD, &bind_cmd, sizeof(bind_cmd));
    w.attr(NFQA_CFG_PARAMS, &params, sizeof(params));
    w.attr_be32(NFQA_CFG_QUEUE_MAXLEN, c.max_len);
    w.attr_be32(NFQA_CFG_MASK, mask);
    w.attr_be32(NFQA_CFG_FLAGS, flags);
  };
  conntrack_ok_ = c.conntrack;
  if (!send(bind_and_configure)) {
    if (!(c.conntrack && last_errno_ == EOPNOTSUPP)) return false;
    // The kernel has no conntrack glue for NFQUEUE: go on without it.
    conntrack_ok_ = false;
    flags &= ~NFQA_CFG_F_CONNTRACK;
    if (!send(bind_and_configure)) return false;
  }
  return true;
}

bool NfqSocket::open(const QueueConfig& c, std::string* error) {
  queue_ = c.queue;
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd_ < 0) {
    *error = std::string("cannot open a netfilter netlink socket: ") + strerror(errno) +
             (errno == EPERM || errno == EACCES ? " (nfsieve run needs root or CAP_NET_ADMIN)" : "");
    return false;
  }
  int size = static_cast<int>(c.rcvbuf);
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0) {
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) < 0) {
    *error = std::string("cannot bind the netlink socket: ") + strerror(errno);
    close();
    return false;
  }
  if (!bind_and_configure(c, error)) return close(), false;
  size_t slot = std::max<size_t>(c.copy_range + 4096, 8192);
  rx_.assign(wire::kQueueMaxBatch, std::vector<uint8_t>(slot));
  msgs_.resize(wire::kQueueMaxBatch);
  iov_.resize(wire::kQueueMaxBatch);
  timeout_ms_ = -1;
  return true;
}

void NfqSocket::stop_queueing(const QueueConfig& c) {
  if (fd_ < 0) return;
  // Order matters: the kernel applies each message (and, inside one message,
  // the length before the flags) under separate locks. Fail-open must be in
  // force before the length drops to 0, or a packet arriving in between meets
  // a full queue without fail-open and is dropped.
  std::vector<uint8_t> msg;
  MessageWriter w(&msg);
  w.begin(NFQNL_MSG_CONFIG, 0, seq_++, queue_);
  uint32_t flags = NFQA_CFG_F_FAIL_OPEN | (c.conntrack ? NFQA_CFG_F_CONNTRACK : 0) | (c.gso ? NFQA_CFG_F_GSO : 0);
  w.attr_be32(NFQA_CFG_MASK, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_CONNTRACK | NFQA_CFG_F_GSO);
  w.attr_be32(NFQA_CFG_FLAGS, flags);
  w.end();
  MessageWriter w2(&msg);
  w2.begin(NFQNL_MSG_CONFIG, 0, seq_++, queue_);
  w2.attr_be32(NFQA_CFG_QUEUE_MAXLEN, 0);
  w2.end();
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
}

void NfqSocket::unbind() {
  if (fd_ < 0) return;
  std::vector<uint8_t> msg;
  MessageWriter w(&msg);
  w.begin(NFQNL_MSG_CONFIG, 0, seq_++, queue_);
  nfqnl_msg_config_cmd cmd{NFQNL_CFG_CMD_UNBIND, 0, 0};
  w.attr(NFQA_CFG_CMD, &cmd, sizeof(cmd));
  w.end();
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
}

// Block for the first datagram only: SO_RCVTIMEO bounds the wait, set again
// only when the timeout changes (one setsockopt per change, not per call).
// Should the socket refuse the timeout, poll() bounds the wait instead.
int NfqSocket::wait_flags(int timeout_ms) {
  if (timeout_ms <= 0) return MSG_DONTWAIT;
  if (timeout_ms != timeout_ms_) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
      timeout_ms_ = -1;
      pollfd p{fd_, POLLIN, 0};
      poll(&p, 1, timeout_ms);
      return MSG_DONTWAIT;
    }
    timeout_ms_ = timeout_ms;
  }
  return MSG_WAITFORONE;
}

// Over 60 lines: one recvmmsg over netlink messages and their attributes; the attribute walk is the body.
int NfqSocket::receive(std::vector<QueuedPacket>* out, int max, int timeout_ms) {
  out->clear();
  if (max > static_cast<int>(rx_.size())) max = static_cast<int>(rx_.size());
  // One system call per wake-up: recvmmsg sleeps until the first datagram
  // (MSG_WAITFORONE), then takes what else is there without waiting. A poll()
  // before it would be a second call for every wake-up.
  mmsghdr* msgs = msgs_.data();
  for (int i = 0; i < max; i++) {
    iov_[i] = {rx_[i].data(), rx_[i].size()};
    std::memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_iov = &iov_[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(fd_, msgs, max, wait_flags(timeout_ms), nullptr);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    const size_t len = msgs[i].msg_len;
    uint8_t* base = rx_[i].data();
    // Walk the datagram by hand: the kernel does not pad the last message
    // (a payload of odd length leaves nlmsg_len unaligned), and NLMSG_NEXT on
    // an unsigned length would wrap around past the end.
    for (size_t off = 0; off + sizeof(nlmsghdr) <= len;) {
      nlmsghdr* h = reinterpret_cast<nlmsghdr*>(base + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > len - off) break;
      off += NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_type == NLMSG_ERROR) {
        // The kernel's answer to a verdict it refused (verdicts go without
        // NLM_F_ACK: only failures are answered), e.g. ENOENT for an id no
        // longer queued: a verdict given twice, or for a packet never received.
        const int error = h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)) ? static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error : 0;
        if (error != 0) {
          refused_++;
          refused_errno_ = -error;
        }
        continue;
      }
      if (h->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) continue;
      QueuedPacket q{};
      q.ct_info = -1;
      bool have_id = false;
      const uint8_t* a = static_cast<const uint8_t*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(nfgenmsg));
      const uint8_t* end = reinterpret_cast<const uint8_t*>(h) + h->nlmsg_len;
      while (a + NLA_HDRLEN <= end) {
        nlattr na;
        std::memcpy(&na, a, sizeof(na));
        if (na.nla_len < NLA_HDRLEN || a + na.nla_len > end) break;
        const uint8_t* d = a + NLA_HDRLEN;
        size_t dl = na.nla_len - NLA_HDRLEN;
        switch (na.nla_type & NLA_TYPE_MASK) {
          case NFQA_PACKET_HDR:
            if (dl >= 6) {
              q.id = be32_at(d);
              q.hw_protocol = static_cast<uint16_t>(d[4] << 8 | d[5]);
              have_id = true;
            }
            break;
          case NFQA_MARK:
            if (dl >= 4) q.mark = be32_at(d);
            break;
          case NFQA_IFINDEX_INDEV:
            if (dl >= 4) q.indev = be32_at(d);
            break;
          case NFQA_IFINDEX_OUTDEV:
            if (dl >= 4) q.outdev = be32_at(d);
            break;
          case NFQA_CT_INFO:
            if (dl >= 4) q.ct_info = static_cast<int32_t>(be32_at(d));
            break;
          case NFQA_CAP_LEN:
            if (dl >= 4) q.original_len = be32_at(d);
            break;
          case NFQA_PAYLOAD:
            q.payload = d;
            q.payload_len = static_cast<uint32_t>(dl);
            break;
          default: break;
        }
        a += NLA_ALIGN(na.nla_len);
      }
      if (!have_id) continue;
      if (q.original_len == 0) q.original_len = q.payload_len;
      out->push_back(q);
    }
  }
  return static_cast<int>(out->size());
}

int NfqSocket::send_verdicts(const std::vector<VerdictOut>& v) {
  tx_.clear();
  MessageWriter w(&tx_);
  for (size_t i = 0; i < v.size();) {
    size_t j = i + 1;
    while (j < v.size() && v[j].verdict == v[i].verdict && v[j].set_mark == v[i].set_mark &&
           (!v[i].set_mark || v[j].mark == v[i].mark))
      j++;
    const VerdictOut& last = v[j - 1];
    w.begin(j - i > 1 ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, 0, seq_++, queue_);
    nfqnl_msg_verdict_hdr vh{htonl(last.verdict), htonl(last.id)};
    w.attr(NFQA_VERDICT_HDR, &vh, sizeof(vh));
    if (last.set_mark) w.attr_be32(NFQA_MARK, last.mark);
    w.end();
    i = j;
  }
  if (tx_.empty()) return 0;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, tx_.data(), tx_.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) return -errno;
  return 0;
}

KernelQueueStats kernel_queue_stats(uint16_t queue) {
  KernelQueueStats s;
  std::ifstream in("/proc/net/netfilter/nfnetlink_queue");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    uint32_t q, portid;
    if (!(f >> q >> portid)) continue;
    if (q != queue) continue;
    f >> s.queue_total >> s.copy_mode >> s.copy_range >> s.queue_dropped >> s.user_dropped >> s.id_sequence;
    s.present = true;
  }
  return s;
}

}  // namespace nfsieve
