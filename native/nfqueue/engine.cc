#include "engine.h"

#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <chrono>

namespace nfsieve {
namespace {

uint64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// enum ip_conntrack_info -> ctstate key (see src/compile/fields.ts).
uint8_t ctstate_of(int32_t ct_info, bool conntrack) {
  using namespace wire;
  if (!conntrack) return kCtStateKeyUnknown;   // not asked for
  if (ct_info < 0) return kCtStateKeyInvalid;  // no conntrack entry
  switch (static_cast<uint32_t>(ct_info)) {
    case kIpCtEstablished:
    case kIpCtEstablishedReply: return kCtStateKeyEstablished;
    case kIpCtRelated:
    case kIpCtRelatedReply: return kCtStateKeyRelated;
    case kIpCtNew: return kCtStateKeyNew;
    case kIpCtUntracked: return kCtStateKeyUntracked;
    default: return kCtStateKeyInvalid;
  }
}

constexpr uint64_t kNameRefreshMs = 2000;
// Timer slack of a worker thread: how much later than asked a moderation
// sleep may end (the kernel's default is 50 µs; 50 µs measured no cheaper).
constexpr unsigned long kCoalesceSlackNs = 10000;

void sleep_ns(uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {}
}

}  // namespace

std::string InterfaceNames::name(uint32_t ifindex, uint64_t t) {
  if (ifindex == 0 || ifindex > 1u << 20) return std::string();
  if (ifindex >= names_.size()) {
    names_.resize(ifindex + 1);
    stamp_.resize(ifindex + 1, 0);
  }
  if (stamp_[ifindex] == 0 || t - stamp_[ifindex] > kNameRefreshMs) {
    char buf[IF_NAMESIZE] = {0};
    names_[ifindex] = if_indextoname(ifindex, buf) ? buf : "";
    stamp_[ifindex] = t;
  }
  return names_[ifindex];
}

ActiveTable::ActiveTable(std::unique_ptr<Classifier> c, size_t workers, uint64_t gen)
    : classifier(std::move(c)), generation(gen) {
  for (size_t i = 0; i < workers; i++) counters.emplace_back(new Counters(classifier->table().rule_count()));
}

QueueEngine::~QueueEngine() { stop(); }

bool QueueEngine::start(std::unique_ptr<Classifier> classifier, const EngineConfig& config, ErrorFn on_error, StatsFn on_stats,
                        std::string* error) {
  config_ = config;
  on_error_ = std::move(on_error);
  on_stats_ = std::move(on_stats);
  if (config.queues.empty()) {
    *error = "no queue to bind";
    return false;
  }
  std::shared_ptr<ActiveTable> table = std::make_shared<ActiveTable>(std::move(classifier), config.queues.size(), ++generation_);
  std::atomic_store(&active_, table);
  for (size_t i = 0; i < config.queues.size(); i++) {
    std::unique_ptr<Worker> w(new Worker());
    w->queue = config.queues[i];
    w->slot = i;
    QueueConfig qc = config.socket;
    qc.queue = w->queue;
    qc.conntrack = qc.conntrack || (table->classifier->table().flags() & wire::kTableFlagNeedsCtState);
    config_.socket.conntrack = qc.conntrack;
    if (!w->socket.open(qc, error)) {
      workers_.clear();  // sockets close; bound queues are released with them
      return false;
    }
    if (qc.conntrack && !w->socket.conntrack_available()) {
      config_.socket.conntrack = false;
      if (warnings_.empty())
        warnings_.push_back(
            "this kernel cannot attach conntrack state to queued packets (NFQA_CFG_F_CONNTRACK: EOPNOTSUPP; "
            "load nf_conntrack_netlink): ctstate conditions see the state as unknown");
    }
    workers_.push_back(std::move(w));
  }
  stop_ = false;
  running_ = true;
  for (auto& w : workers_) {
    Worker* raw = w.get();
    w->thread = std::thread([this, raw] { run(raw); });
  }
  if (config_.stats_interval_ms > 0 && on_stats_) {
    reporter_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "nfsieve-stats");
      std::unique_lock<std::mutex> lk(reporter_mutex_);
      while (!stop_) {
        reporter_cv_.wait_for(lk, std::chrono::milliseconds(config_.stats_interval_ms));
        if (!stop_) on_stats_();
      }
    });
  }
  return true;
}

void QueueEngine::reload(std::unique_ptr<Classifier> classifier) {
  std::lock_guard<std::mutex> control(control_mutex_);
  std::shared_ptr<ActiveTable> old = std::atomic_load(&active_);
  std::shared_ptr<ActiveTable> next = std::make_shared<ActiveTable>(std::move(classifier), workers_.size(), ++generation_);
  if (old) {
    // File members are the new table's alone; live members (set at run time,
    // by updown scripts say) carry over with their remaining timeouts. The
    // workers share this lock as readers: they never wait for the copy.
    std::shared_lock<std::shared_mutex> lk(old->sets_mutex);
    const int64_t now = steady_now_ms();
    for (NamedSet& s : next->classifier->sets()) {
      NamedSet* prev = old->classifier->find_set(s.name);
      if (prev && prev->kind == s.kind) s.merge_live(*prev, now);
    }
  }
  std::atomic_store(&active_, next);
}

void QueueEngine::stop() {
  std::lock_guard<std::mutex> guard(stop_mutex_);
  if (!running_) return;
  {
    std::lock_guard<std::mutex> lk(reporter_mutex_);
    stop_ = true;
  }
  reporter_cv_.notify_all();
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  if (reporter_.joinable()) reporter_.join();
  running_ = false;
}

void QueueEngine::run(Worker* w) {
  std::string name = "nfsieve-q" + std::to_string(w->queue);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  std::vector<QueuedPacket> packets;
  std::vector<VerdictOut> verdicts;
  packets.reserve(config_.batch);
  verdicts.reserve(config_.batch);
  // A target above half the receive vector would fill it and leave the
  // moderation nothing to aim at (a smaller `batch` option lowers it).
  Moderator moderator(config_.coalesce_us, std::min<uint32_t>(config_.coalesce_target, std::max(1, config_.batch / 2)));
  if (config_.coalesce_us > 0) prctl(PR_SET_TIMERSLACK, kCoalesceSlackNs, 0, 0, 0);
  while (!stop_.load(std::memory_order_relaxed)) {
    const uint64_t before = monotonic_ns();
    int n = w->socket.receive(&packets, config_.batch, 100);
    if (n < 0) {
      if (n == -ENOBUFS) {
        w->counters.enobufs.fetch_add(1, std::memory_order_relaxed);
        report(w, w->enobufs_reports, "socket buffer overrun (ENOBUFS): the kernel dropped packets; raise --rcvbuf");
      } else {
        w->counters.receive_errors.fetch_add(1, std::memory_order_relaxed);
        report(w, w->receive_reports, std::string("receive failed: ") + strerror(-n));
      }
      continue;
    }
    if (const uint64_t refused = w->socket.take_refused()) {
      w->counters.verdict_errors.fetch_add(refused, std::memory_order_relaxed);
      const int e = w->socket.refused_errno();
      report(w, w->verdict_reports,
             "the kernel refused " + std::to_string(refused) + " verdict(s): " +
                 (e == ENOENT ? std::string("no packet with that id is queued (ENOENT)") : std::string(strerror(e))));
    }
    if (n <= 0) continue;
    const uint64_t after = monotonic_ns();
    process(w, packets, verdicts);
    const uint64_t pause = moderator.after_batch(n, config_.batch, before, after - before, after);
    if (pause > 0) sleep_ns(pause);
  }
  // Stopping: have the kernel stop queueing, answer everything already queued
  // (in the socket or still in the kernel's queue), then unbind.
  QueueConfig qc = config_.socket;
  qc.queue = w->queue;
  w->socket.stop_queueing(qc);
  uint64_t deadline = now_ms() + 2000;
  while (now_ms() < deadline) {
    int n = w->socket.receive(&packets, config_.batch, 10);
    if (n > 0) {
      process(w, packets, verdicts);
      continue;
    }
    if (n == 0 && kernel_queue_stats(w->queue).queue_total == 0) break;
  }
  w->final_kernel = kernel_queue_stats(w->queue);
  w->socket.unbind();
  w->socket.close();
}

// One error report through the limiter of its kind (at most one a second per queue and kind).
void QueueEngine::report(Worker* w, ReportLimiter& limiter, const std::string& what) {
  uint64_t suppressed = 0;
  if (!on_error_ || !limiter.allow(now_ms(), &suppressed)) return;
  std::string message = "queue " + std::to_string(w->queue) + ": " + what;
  if (suppressed > 0) message += " (" + std::to_string(suppressed) + " more suppressed)";
  on_error_(message);
}

namespace {

// One batch's working space, kept per thread between batches.
struct Batch {
  std::vector<Decoded> decoded;
  std::vector<Meta> metas;
  std::vector<std::string> ifnames;  // in and out name of each packet (Meta points into them)
  std::vector<Verdict> results;
};

// What a batch's verdicts add to the queue's counters.
struct Tally {
  uint64_t accepted = 0, dropped = 0, rejected = 0, queued = 0, not_ip = 0, bytes = 0;
};

// Decode each packet and gather what the policy may read besides it.
void decode_batch(const std::vector<QueuedPacket>& packets, bool conntrack, Batch* b) {
  thread_local InterfaceNames names;
  const size_t count = packets.size();
  b->decoded.resize(count);
  b->metas.assign(count, Meta());
  b->ifnames.resize(2 * count);
  b->results.resize(count);
  const uint64_t batch_time = now_ms();      // one clock read per batch, not per packet
  const uint64_t batch_ns = monotonic_ns();  // rate limits' clock, likewise
  for (size_t i = 0; i < count; i++) {
    const QueuedPacket& p = packets[i];
    decode_ip(p.payload, p.payload_len, &b->decoded[i]);
    const std::string& in = b->ifnames[2 * i] = names.name(p.indev, batch_time);
    const std::string& out = b->ifnames[2 * i + 1] = names.name(p.outdev, batch_time);
    Meta& m = b->metas[i];
    m.in = in.empty() ? nullptr : in.data();
    m.in_len = static_cast<uint8_t>(in.size());
    m.out = out.empty() ? nullptr : out.data();
    m.out_len = static_cast<uint8_t>(out.size());
    m.ctstate = ctstate_of(p.ct_info, conntrack);
    m.mark = p.mark;
    m.now_ns = batch_ns;
  }
}

// The kernel verdict for one classified packet (a reject is a drop, or an
// accept with the reject mark), counted in `t`.
VerdictOut kernel_verdict(const QueuedPacket& p, const Verdict& v, const EngineConfig& config, Tally* t) {
  VerdictOut o{p.id, kNfAccept, false, 0};
  switch (v.verdict) {
    case kVerdictAccept:
      o.verdict = kNfAccept;
      t->accepted++;
      break;
    case kVerdictDrop:
      o.verdict = kNfDrop;
      t->dropped++;
      break;
    case kVerdictReject:
      t->rejected++;
      o.verdict = config.reject_mark_set ? kNfAccept : kNfDrop;
      o.set_mark = config.reject_mark_set;
      o.mark = config.reject_mark_set ? config.reject_mark : 0;
      break;
    case kVerdictQueue:
      o.verdict = kNfQueue | static_cast<uint32_t>(v.queue) << 16;
      t->queued++;
      break;
    case kVerdictRepeat:
      o.verdict = kNfRepeat;
      t->accepted++;
      break;
    default:
      o.verdict = kNfAccept;
      t->not_ip++;
      break;  // not IP: nothing in the policy speaks about it
  }
  if (v.mark_set && !o.set_mark) {
    o.set_mark = true;
    o.mark = v.mark;
  }
  t->bytes += p.original_len;
  return o;
}

void add_tally(QueueCounters& qc, const Tally& t, size_t count) {
  auto bump = [](std::atomic<uint64_t>& c, uint64_t by) {
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  };
  bump(qc.accepted, t.accepted);
  bump(qc.dropped, t.dropped);
  bump(qc.rejected, t.rejected);
  bump(qc.queued, t.queued);
  bump(qc.not_ip, t.not_ip);
  bump(qc.bytes, t.bytes);
  bump(qc.received, count);
  bump(qc.batches, 1);
}

}  // namespace

// One batch: decode, classify under the sets' read lock, verdicts, counters, send.
void QueueEngine::process(Worker* w, std::vector<QueuedPacket>& packets, std::vector<VerdictOut>& verdicts) {
  thread_local Batch batch;
  verdicts.clear();
  std::shared_ptr<ActiveTable> table = std::atomic_load(&active_);
  const size_t count = packets.size();
  decode_batch(packets, config_.socket.conntrack, &batch);
  {
    std::shared_lock<std::shared_mutex> lk(table->sets_mutex);
    table->classifier->classify_batch(batch.decoded.data(), count, batch.metas.data(), 1, batch.results.data(),
                                      table->counters[w->slot].get());
  }
  Tally tally;
  for (size_t i = 0; i < count; i++) verdicts.push_back(kernel_verdict(packets[i], batch.results[i], config_, &tally));
  add_tally(w->counters, tally, count);
  int err = w->socket.send_verdicts(verdicts);
  if (err < 0) {
    w->counters.verdict_errors.fetch_add(1, std::memory_order_relaxed);
    report(w, w->verdict_reports, std::string("sending verdicts failed: ") + strerror(-err));
  }
}

EngineStats QueueEngine::stats() const {
  EngineStats s;
  for (const auto& w : workers_) {
    const QueueCounters& c = w->counters;
    QueueStatsSnapshot q{w->queue,
                         c.received.load(),
                         c.accepted.load(),
                         c.dropped.load(),
                         c.rejected.load(),
                         c.queued.load(),
                         c.not_ip.load(),
                         c.bytes.load(),
                         c.enobufs.load(),
                         c.verdict_errors.load(),
                         c.receive_errors.load(),
                         c.batches.load(),
                         running_ ? kernel_queue_stats(w->queue) : w->final_kernel};
    s.queues.push_back(q);
  }
  std::shared_ptr<ActiveTable> table = std::atomic_load(&active_);
  s.generation = table ? table->generation : 0;
  if (table) {
    size_t n = table->classifier->table().rule_count() + 1;
    s.hits.assign(n, 0);
    s.bytes.assign(n, 0);
    s.over_limit.assign(n, 0);
    s.evictions.assign(n, 0);
    for (const auto& c : table->counters)
      for (size_t i = 0; i < n; i++) {
        s.hits[i] += c->hits(i);
        s.bytes[i] += c->bytes(i);
        s.over_limit[i] += c->over_limit(i);
      }
    const Table& t = table->classifier->table();
    for (uint32_t l = 0; l < t.limit_count(); l++) s.evictions[t.limit_rule(l)] += table->classifier->limits().evictions(l);
  }
  return s;
}

namespace {

// Change a set the workers read. A change that touches O(1) members runs in
// place under the workers' lock; one that may rebuild a table (a hash table
// growing, a flush, a mass expiry) runs on a copy outside the lock, and the
// lock covers only the swap. Either way the workers wait microseconds.
template <typename F>
void write_set(NamedSet& s, std::shared_mutex& lock, bool heavy, F f) {
  if (!heavy) {
    std::unique_lock<std::shared_mutex> lk(lock);
    f(s);
    return;
  }
  NamedSet next = s;  // the workers go on reading s meanwhile
  f(next);
  std::unique_lock<std::shared_mutex> lk(lock);
  std::swap(s.addresses, next.addresses);
  std::swap(s.spis, next.spis);
}

constexpr size_t kExpireInPlace = 64;  // more members due at once: expire on a copy

}  // namespace

// op(set, the workers' lock); the control mutex keeps other writers out, so
// readers here need no lock.
template <typename Op>
int QueueEngine::with_set(const std::string& name, uint8_t kind, Op op) const {
  std::lock_guard<std::mutex> control(control_mutex_);
  std::shared_ptr<ActiveTable> table = std::atomic_load(&active_);
  if (!table) return kNoSuchSet;
  NamedSet* s = table->classifier->find_set(name);
  if (!s) return kNoSuchSet;
  if (kind && s->kind != kind) return kWrongKind;
  op(*s, table->sets_mutex);
  return kSetOk;
}

int QueueEngine::set_add(const std::string& name, const SetElement& e, int64_t expires_ms, bool* changed) {
  return with_set(name, e.kind, [&](NamedSet& s, std::shared_mutex& m) {
    write_set(s, m, s.add_would_grow(e), [&](NamedSet& t) { *changed = t.add(e, kOriginLive, expires_ms); });
  });
}

int QueueEngine::set_remove(const std::string& name, const SetElement& e, uint8_t origins, bool* changed) {
  return with_set(name, e.kind, [&](NamedSet& s, std::shared_mutex& m) {
    write_set(s, m, false, [&](NamedSet& t) { *changed = t.remove(e, origins); });
  });
}

int QueueEngine::set_flush(const std::string& name, uint8_t origins, size_t* count) {
  return with_set(name, 0, [&](NamedSet& s, std::shared_mutex& m) {
    write_set(s, m, true, [&](NamedSet& t) { *count = t.flush(origins); });
  });
}

int QueueEngine::set_test(const std::string& name, const SetElement& e, bool* matched) const {
  return with_set(name, e.kind, [&](NamedSet& s, std::shared_mutex&) { *matched = s.test(e); });
}

int QueueEngine::set_list(const std::string& name, std::vector<MemberInfo>* out) const {
  return with_set(name, 0, [&](NamedSet& s, std::shared_mutex&) { s.list(out, steady_now_ms()); });
}

size_t QueueEngine::set_expire() {
  std::lock_guard<std::mutex> control(control_mutex_);
  std::shared_ptr<ActiveTable> table = std::atomic_load(&active_);
  if (!table) return 0;
  const int64_t now = steady_now_ms();
  size_t n = 0;
  for (NamedSet& s : table->classifier->sets()) {
    if (!s.timed()) continue;
    const size_t due = s.due(now);
    if (due == 0) continue;
    write_set(s, table->sets_mutex, due > kExpireInPlace, [&](NamedSet& t) { n += t.expire(now); });
  }
  return n;
}

std::vector<QueueEngine::SetSummary> QueueEngine::set_summaries() const {
  std::lock_guard<std::mutex> control(control_mutex_);
  std::vector<SetSummary> out;
  std::shared_ptr<ActiveTable> table = std::atomic_load(&active_);
  if (!table) return out;
  const int64_t now = steady_now_ms();
  for (const NamedSet& s : table->classifier->sets()) out.push_back(SetSummary{s.name, s.kind, s.sizes(now)});
  return out;
}

}  // namespace nfsieve
