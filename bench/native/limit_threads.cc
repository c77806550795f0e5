// Contention of the limit locks (native/core/limit.h): T threads take tokens
// from one per-rule bucket, or from one per-source table (each thread its own
// stream of sources), as NFQUEUE queue threads would. ns per take, per thread.
// Build and run: g++ -O2 -std=c++17 -pthread bench/native/limit_threads.cc native/core/limit.cc -o /tmp/limit_threads && /tmp/limit_threads
// TAKES=N takes per thread (default 4,000,000), KEYS=N sources per thread (default 1,000; above
// 65,536 in all the table evicts). Built with -fsanitize=thread or address,undefined it is
// also the limit code's sanitizer check (clean at KEYS=200000).
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <thread>
#include <vector>

#include "../../native/core/limit.h"

using namespace nfsieve;

static double run(int threads, bool per_source) {
  const int kTakes = getenv("TAKES") ? atoi(getenv("TAKES")) : 4000000;
  LimitRec rec{};
  rec.rate = 1000; rec.burst = 1000; rec.period_ns = 1000000000ull; rec.max_sources = 65536;
  BucketParams p;
  bucket_params(rec, &p);
  SpinLock lock;
  uint64_t credit = p.cap, last = 0;
  SourceBuckets sources(65536, 0x1234);
  auto work = [&](int t) {
    uint64_t now = 1;
    uint32_t s = 0x9e3779b9u * (t + 1);
    for (int i = 0; i < kTakes; i++) {
      now += 50;
      if (per_source) {
        s = s * 1664525u + 1013904223u;
        sources.lock().lock();
        sources.take(uint64_t(s % (getenv("KEYS") ? atoi(getenv("KEYS")) : 1000)) << 32 | uint64_t(t) << 56, 0, 4, now, p);
        sources.lock().unlock();
      } else {
        lock.lock();
        bucket_take(&credit, &last, now, p);
        lock.unlock();
      }
    }
  };
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) ts.emplace_back(work, t);
  for (auto& t : ts) t.join();
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  return ns / kTakes;  // wall time per take of one thread
}

int main() {
  for (bool per_source : {false, true})
    for (int threads : {1, 2, 4})
      std::printf("%-10s %d thread(s): %.1f ns per take (wall, per thread)\n", per_source ? "per-source" : "per-rule", threads, run(threads, per_source));
  return 0;
}
