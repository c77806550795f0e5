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
// take a writer lock that workers take as readers once per batch. Rate-limit
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
#include "nfq_socket.h"

namespace nfsieve {

struct EngineConfig {
  std::vector<uint16_t> queues;
  QueueConfig socket;            // queue number filled per worker
  bool reject_mark_set = false;  // reject verdicts: accept with this mark (else drop)
  uint32_t reject_mark = 0;
  int batch = 64;
  int stats_interval_ms = 0;     // 0: no periodic statistics callback
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

class QueueEngine {
 public:
  using ErrorFn = std::function<void(const std::string&)>;
  using StatsFn = std::function<void()>;

  QueueEngine() = default;
  ~QueueEngine();

  // Bind every queue, then start the workers. False (nothing left running) with *error.
  bool start(std::unique_ptr<Classifier> classifier, const EngineConfig& config, ErrorFn on_error, StatsFn on_stats,
             std::string* error);
  // Swap in a new table; live members of sets present in both tables carry over.
  void reload(std::unique_ptr<Classifier> classifier);
  // Stop receiving, give every received packet its verdict, unbind, join. Idempotent.
  void stop();
  bool running() const { return running_.load(); }
  // Things worth telling the user at start (conntrack unavailable...).
  const std::vector<std::string>& warnings() const { return warnings_; }

  EngineStats stats() const;
  // Named-set changes on the active table. Returns false if the set does not exist.
  bool set_address(const std::string& name, bool add, int family, const uint8_t* bytes, int length, bool* changed);
  bool set_spi(const std::string& name, bool add, uint32_t lo, uint32_t hi, bool* changed);

 private:
  struct Worker {
    uint16_t queue;
    size_t slot;
    NfqSocket socket;
    QueueCounters counters;
    std::thread thread;
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
  std::mutex control_mutex_;  // serialises reload and set changes
  std::vector<std::string> warnings_;

  void run(Worker* w);
  template <typename Change>
  bool change_set(const std::string& name, uint8_t kind, Change change);
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
