// Wake-up moderation of a queue worker (engine.cc): how long to sleep after
// each batch. Free of the engine and of napi.h, so the test kit can drive it.
#pragma once

#include <algorithm>
#include <cstdint>

namespace nfsieve {

// Wake-up moderation, in the manner of a NIC's adaptive interrupt moderation
// (the kernel's DIM). Most of a queue worker's CPU under load is the kernel's
// per wake-up and per system call: the switch back to the thread after a
// sleep (10-20 µs on this project's VM, measured: docs/benchmarks.md), a
// recvmmsg, a verdict sendto. Packets that share a wake-up share those.
//
// After each batch a worker estimates its own arrival rate (packets over the
// time between the ends of two receives, smoothed) and sleeps so that the
// next batch gathers `target` packets: the time from the end of this receive
// to the start of the next is to be target / rate, of which the batch's own
// processing and the sleep's lateness (also measured, smoothed) are already
// part. The sleep is bounded above by the window (--coalesce-us): that is
// the most a worker sleeps, so a packet that arrives just after a drain
// waits at most the window, plus its batch's processing and the timer's and
// scheduler's lateness, before it is received. So with several queues, each
// of which sees a share of the rate, each worker sleeps longer and gathers
// the same batch as one queue would, as long as the window allows it.
//
// It never sleeps when the sleep could not gather anything or more is
// waiting: not after a full batch (more is queued), not when this receive
// waited a window or more for its first packet (a lone packet, or a rate
// under one packet per window: the next is taken the moment it comes), not
// while the estimated rate brings less than one packet per window, and not
// when processing alone already gathers the target. Pure arithmetic on the
// times it is given (tested through the test kit on made-up times).
class Moderator {
 public:
  Moderator(uint32_t window_us, uint32_t target)
      : window_ns_(static_cast<uint64_t>(window_us) * 1000), target_(target > 0 ? target : 1) {}
  // A receive began at `begin_ns`, found its first packet `waited_ns` later and
  // returned `count` (of at most `max`) at `end_ns`. How long to sleep (ns, 0: none)?
  uint64_t after_batch(int count, int max, uint64_t begin_ns, uint64_t waited_ns, uint64_t end_ns) {
    if (window_ns_ == 0 || count <= 0) return 0;
    if (last_end_ns_ != 0 && begin_ns >= last_end_ns_) {
      // A stall (the thread waiting for a CPU) counts at most a window, so one
      // does not stop the sleeps that would bring the overhead back down.
      const double late = static_cast<double>(begin_ns - last_end_ns_) - static_cast<double>(slept_ns_);
      overhead_ns_ += (std::min(std::max(late, 0.0), static_cast<double>(window_ns_)) - overhead_ns_) * kSmoothing;
    }
    if (last_end_ns_ != 0 && end_ns > last_end_ns_) {
      const double sample = count / static_cast<double>(end_ns - last_end_ns_);
      per_ns_ = per_ns_ > 0 ? per_ns_ + (sample - per_ns_) * kSmoothing : sample;
    }
    last_end_ns_ = end_ns;
    slept_ns_ = choose(count, max, waited_ns);
    return slept_ns_;
  }
  // Packets per second the worker estimates it receives (0: no estimate yet).
  double rate_per_s() const { return per_ns_ * 1e9; }

  static constexpr double kSmoothing = 0.25;  // weight of the newest sample in the moving averages

 private:
  uint64_t choose(int count, int max, uint64_t waited_ns) const {
    if (count >= max || waited_ns >= window_ns_ || per_ns_ <= 0) return 0;
    if (per_ns_ * static_cast<double>(window_ns_) < 1.0) return 0;
    const double gap = target_ / per_ns_ - overhead_ns_;
    if (gap <= 0) return 0;
    return gap >= static_cast<double>(window_ns_) ? window_ns_ : static_cast<uint64_t>(gap);
  }

  uint64_t window_ns_;
  double target_;
  uint64_t last_end_ns_ = 0;
  uint64_t slept_ns_ = 0;   // the sleep chosen after the last batch
  double per_ns_ = 0;       // smoothed arrival rate, packets per ns
  double overhead_ns_ = 0;  // smoothed time from a receive's end to the next's start beyond the sleep
};

}  // namespace nfsieve
