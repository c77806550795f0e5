// The queue engine: one thread per NFQUEUE queue, each with its own netlink
// socket, classifying every packet natively against the active table and
// answering in batched verdicts. JavaScript is never on the per-packet path:
// it hears about errors and periodic statistics through callbacks the glue
// turns into ThreadSafeFunction calls.
//
// Table swap: the active table (classifier, named sets, per-thread counters)
// sits behind a shared_ptr that reload() replaces atomically. A worker takes
// its own reference once per batch, so a batch never sees two tables, and the
// old table is freed when the last worker lets go of it. Named-set changes
// take a writer lock that workers take as readers once per batch.
//
// A reload builds the new table's sets outside that lock: file members come
// from the new table alone, live members (with their expiries) from the old
// table's sets of the same name and kind; then one pointer swap. Rate-limit
// buckets belong to the classifier: set changes keep them, a reload starts
// the new table's buckets full. Workers read CLOCK_MONOTONIC once per batch
// for them (Meta::now_ns).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "../core/classify.h"
#include "moderation.h"
#include "nfq_socket.h"

namespace nfsieve {

constexpr int kSetOk = 0;
constexpr int kNoSuchSet = 1;
constexpr int kWrongKind = 2;

struct EngineConfig {
  std::vector<uint16_t> queues;
  QueueConfig socket;            // queue number filled per worker
  bool reject_mark_set = false;  // reject verdicts: accept with this mark (else drop)
  uint32_t reject_mark = 0;
  int batch = wire::kQueueBatch;                          // packets per receive, at most wire::kQueueMaxBatch
  uint32_t coalesce_us = wire::kQueueCoalesceUs;          // longest wake-up moderation sleep (Moderator); 0: off
  uint32_t coalesce_target = wire::kQueueCoalesceTarget;  // packets a moderated batch aims at
  int stats_interval_ms = 0;                              // 0: no periodic statistics callback
};

// The table in force, with what belongs to it.
struct ActiveTable {
  explicit ActiveTable(std::unique_ptr<Classifier> c, size_t workers, uint64_t gen);
  std::unique_ptr<Classifier> classifier;
  std::shared_mutex sets_mutex;
  std::vector<std::unique_ptr<Counters>> counters;  // one per worker
  uint64_t generation;
};

struct QueueCounters {
  std::atomic<uint64_t> received{0}, accepted{0}, dropped{0}, rejected{0}, queued{0}, not_ip{0};
  std::atomic<uint64_t> bytes{0}, enobufs{0}, verdict_errors{0}, receive_errors{0}, batches{0};
};

struct QueueStatsSnapshot {
  uint16_t queue;
  uint64_t received, accepted, dropped, rejected, queued, not_ip, bytes, enobufs, verdict_errors, receive_errors, batches;
  KernelQueueStats kernel;
};

struct EngineStats {
  std::vector<QueueStatsSnapshot> queues;
  std::vector<uint64_t> hits, bytes;  // per rule + default, summed over workers
  std::vector<uint64_t> over_limit;   // per rule + default: packets its limit refused
  std::vector<uint64_t> evictions;    // per rule + default: per-source buckets evicted
  uint64_t generation;
};

// At most one report per interval for one kind of error; the reports held
// back are counted and named in the next one ("N more suppressed"), so a
// lasting error costs one message a second, not one per batch.
class ReportLimiter {
 public:
  explicit ReportLimiter(uint64_t interval_ms = 1000) : interval_ms_(interval_ms) {}
  // True when a report may go out at `now_ms`; *suppressed is then the count held back since the last one.
  bool allow(uint64_t now_ms, uint64_t* suppressed) {
    if (sent_ && now_ms - last_ms_ < interval_ms_) {
      held_++;
      return false;
    }
    sent_ = true;
    last_ms_ = now_ms;
    *suppressed = held_;
    held_ = 0;
    return true;
  }

 private:
  uint64_t interval_ms_;
  uint64_t last_ms_ = 0;
  uint64_t held_ = 0;
  bool sent_ = false;
};

class QueueEngine {
 public:
  using ErrorFn = std::function<void(const std::string&)>;
  using StatsFn = std::function<void()>;

  QueueEngine() = default;
  ~QueueEngine();

  // Bind every queue, then start the workers. False (nothing left running) with *error.
  bool start(std::unique_ptr<Classifier> classifier, const EngineConfig& config, ErrorFn on_error, StatsFn on_stats,
             std::string* error);
  // Swap in a new table: its file members exactly, plus the live members of
  // sets present in both tables with the same kind.
  void reload(std::unique_ptr<Classifier> classifier);
  // Stop receiving, give every received packet its verdict, unbind, join. Idempotent.
  void stop();
  bool running() const { return running_.load(); }
  // Things worth telling the user at start (conntrack unavailable...).
  const std::vector<std::string>& warnings() const { return warnings_; }

  EngineStats stats() const;
  // Named-set operations on the active table (sets.h). Each returns kSetOk, or
  // kNoSuchSet / kWrongKind and changes nothing. Writers hold the table's set
  // lock only for the change itself; readers (lists) share it with the workers.
  int set_add(const std::string& name, const SetElement& e, int64_t expires_ms, bool* changed);
  int set_remove(const std::string& name, const SetElement& e, uint8_t origins, bool* changed);
  int set_flush(const std::string& name, uint8_t origins, size_t* count);
  int set_test(const std::string& name, const SetElement& e, bool* matched) const;
  int set_list(const std::string& name, std::vector<MemberInfo>* out) const;
  // Reap expired live members of every set; returns how many went.
  size_t set_expire();
  struct SetSummary {
    std::string name;
    uint8_t kind;
    SetSizes sizes;
  };
  std::vector<SetSummary> set_summaries() const;

 private:
  struct Worker {
    uint16_t queue;
    size_t slot;
    NfqSocket socket;
    QueueCounters counters;
    std::thread thread;
    ReportLimiter receive_reports, verdict_reports, enobufs_reports;  // touched by this worker's thread only
    KernelQueueStats final_kernel;  // the kernel's counters just before unbinding (they vanish with the queue)
  };

  EngineConfig config_;
  std::shared_ptr<ActiveTable> active_;  // std::atomic_load / std::atomic_store only
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<uint64_t> generation_{0};
  ErrorFn on_error_;
  StatsFn on_stats_;
  std::thread reporter_;
  std::mutex reporter_mutex_;
  std::condition_variable reporter_cv_;
  std::mutex stop_mutex_;
  mutable std::mutex control_mutex_;  // serialises reload and set operations
  std::vector<std::string> warnings_;

  void run(Worker* w);
  void report(Worker* w, ReportLimiter& limiter, const std::string& what);
  template <typename Op>
  int with_set(const std::string& name, uint8_t kind, Op op) const;
  void process(Worker* w, std::vector<QueuedPacket>& packets, std::vector<VerdictOut>& verdicts);
};

// Interface index -> name, cached and refreshed (links come and go).
class InterfaceNames {
 public:
  // Name of ifindex (empty when unknown); `now_ms` decides when a cached name is stale.
  std::string name(uint32_t ifindex, uint64_t now_ms);

 private:
  std::vector<std::string> names_;
  std::vector<uint64_t> stamp_;
};

}  // namespace nfsieve
