// Node-API glue for the queue engine (native/nfqueue/engine.h): exported as
// the QueueEngine class. Events reach JavaScript through one
// ThreadSafeFunction, never once per packet; the function is unref'd so an
// attached queue alone does not keep the process alive, and a throwing
// listener is contained here. Its queue is bounded (kEventQueueBound): when
// JavaScript falls behind, events are dropped and counted, and the next
// error event delivered says how many were lost.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "core/classify.h"
#include "glue.h"
#include "nfqueue/engine.h"
#include "set_glue.h"

namespace glue {
namespace {

struct Event {
  std::string kind;
  std::string message;
};

// Events waiting for the JavaScript thread, at most (errors are already
// rate-limited by the engine, statistics come once per interval).
constexpr size_t kEventQueueBound = 64;

std::unique_ptr<nfsieve::Classifier> classifier_from(const Napi::Value& v) {
  Napi::Env env = v.Env();
  if (!is_bytes(v)) throw Napi::TypeError::New(env, "table must be a Uint8Array");
  Bytes t = bytes_of(v);
  std::string error;
  std::unique_ptr<nfsieve::Table> table = nfsieve::Table::load(t.data, t.length, &error);
  if (!table) throw coded_error(env, error, "ETABLE");
  try {
    return std::unique_ptr<nfsieve::Classifier>(new nfsieve::Classifier(std::move(table)));
  } catch (const std::bad_alloc&) {
    throw coded_error(env, "out of memory loading the table (lookup index and rate-limit state)", "ETABLE");
  }
}

uint32_t opt_u32(const Napi::Object& o, const char* key, uint32_t fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : fallback;
}

bool opt_bool(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}

class StopWorker : public Napi::AsyncWorker {
 public:
  StopWorker(Napi::Env env, std::shared_ptr<nfsieve::QueueEngine> engine, Napi::ThreadSafeFunction tsfn)
      : Napi::AsyncWorker(env), engine_(std::move(engine)), tsfn_(tsfn), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { engine_->stop(); }
  void OnOK() override {
    if (tsfn_) tsfn_.Release();
    deferred_.Resolve(Env().Undefined());
  }

 private:
  std::shared_ptr<nfsieve::QueueEngine> engine_;
  Napi::ThreadSafeFunction tsfn_;
  Napi::Promise::Deferred deferred_;
};

class QueueEngineWrap : public Napi::ObjectWrap<QueueEngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "QueueEngine",
                       {
                           InstanceMethod<&QueueEngineWrap::Start>("start"),
                           InstanceMethod<&QueueEngineWrap::Reload>("reload"),
                           InstanceMethod<&QueueEngineWrap::Stats>("stats"),
                           InstanceMethod<&QueueEngineWrap::SetAdd>("setAdd"),
                           InstanceMethod<&QueueEngineWrap::SetRemove>("setRemove"),
                           InstanceMethod<&QueueEngineWrap::SetFlush>("setFlush"),
                           InstanceMethod<&QueueEngineWrap::SetTest>("setTest"),
                           InstanceMethod<&QueueEngineWrap::SetList>("setList"),
                           InstanceMethod<&QueueEngineWrap::SetExpire>("setExpire"),
                           InstanceMethod<&QueueEngineWrap::SetInfo>("setInfo"),
                           InstanceMethod<&QueueEngineWrap::Close>("close"),
                       });
  }

  explicit QueueEngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<QueueEngineWrap>(info) {
    engine_ = std::make_shared<nfsieve::QueueEngine>();
    // Stop the threads if the environment goes away first (process exit, worker termination).
    std::weak_ptr<nfsieve::QueueEngine> weak = engine_;
    info.Env().AddCleanupHook([weak]() {
      if (auto e = weak.lock()) e->stop();
    });
  }

  ~QueueEngineWrap() override {
    if (engine_) engine_->stop();
  }

 private:
  std::shared_ptr<nfsieve::QueueEngine> engine_;
  Napi::ThreadSafeFunction tsfn_;
  bool closed_ = false;

  // start(table, {queues, copyRange, maxLen, rcvbuf, failOpen, conntrack, gso, rejectMark, batch, coalesceUs,
  //               statsIntervalMs}, onEvent)
  // Over 60 lines: reads and checks every start option in one place, then starts the engine.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_ || engine_->running()) throw Napi::Error::New(env, "this engine was already started");
    std::unique_ptr<nfsieve::Classifier> classifier = classifier_from(info[0]);
    if (!info[1].IsObject() || !info[2].IsFunction()) throw Napi::TypeError::New(env, "start(table, options, onEvent)");
    Napi::Object o = info[1].As<Napi::Object>();
    nfsieve::EngineConfig c;
    Napi::Value queues = o.Get("queues");
    if (!queues.IsArray()) throw Napi::TypeError::New(env, "options.queues must be an array of queue numbers");
    Napi::Array qa = queues.As<Napi::Array>();
    for (uint32_t i = 0; i < qa.Length(); i++) {
      Napi::Value q = qa.Get(i);
      if (!q.IsNumber() || q.As<Napi::Number>().Uint32Value() > 65535)
        throw Napi::RangeError::New(env, "queue numbers are 0-65535");
      c.queues.push_back(static_cast<uint16_t>(q.As<Napi::Number>().Uint32Value()));
    }
    const nfsieve::QueueConfig defaults;  // the one set of defaults (core/wire.h, kQueue*)
    c.socket.copy_range = opt_u32(o, "copyRange", defaults.copy_range);
    c.socket.max_len = opt_u32(o, "maxLen", defaults.max_len);
    c.socket.rcvbuf = opt_u32(o, "rcvbuf", defaults.rcvbuf);
    c.socket.fail_open = opt_bool(o, "failOpen", false);
    c.socket.conntrack = opt_bool(o, "conntrack", false);
    c.socket.gso = opt_bool(o, "gso", defaults.gso);
    c.batch =
        static_cast<int>(std::min<uint32_t>(std::max<uint32_t>(opt_u32(o, "batch", c.batch), 1), nfsieve::wire::kQueueMaxBatch));
    c.coalesce_us = opt_u32(o, "coalesceUs", c.coalesce_us);
    if (c.coalesce_us > nfsieve::wire::kQueueCoalesceMaxUs)
      throw Napi::RangeError::New(env, "coalesceUs is 0-" + std::to_string(nfsieve::wire::kQueueCoalesceMaxUs));
    c.stats_interval_ms = static_cast<int>(opt_u32(o, "statsIntervalMs", 0));
    Napi::Value rm = o.Get("rejectMark");
    if (rm.IsNumber()) {
      c.reject_mark_set = true;
      c.reject_mark = rm.As<Napi::Number>().Uint32Value();
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "nfsieve-queue-events", kEventQueueBound, 1);
    tsfn_.Unref(env);
    Napi::ThreadSafeFunction tsfn = tsfn_;
    auto lost = std::make_shared<std::atomic<uint64_t>>(0);
    auto emit = [tsfn, lost](const std::string& kind, const std::string& message) mutable {
      Event* e = new Event{kind, message};
      uint64_t missed = kind == "error" ? lost->exchange(0) : 0;
      if (missed > 0) e->message += " (" + std::to_string(missed) + " events dropped: the event queue was full)";
      napi_status s = tsfn.NonBlockingCall(e, [](Napi::Env env, Napi::Function fn, Event* ev) {
        std::unique_ptr<Event> owned(ev);
        if (env == nullptr || fn.IsEmpty()) return;
        try {
          fn.Call({Napi::String::New(env, owned->kind), Napi::String::New(env, owned->message)});
        } catch (const Napi::Error&) {
          // A listener threw: never let it take the process down.
        }
      });
      if (s != napi_ok) {
        lost->fetch_add(1 + missed);
        delete e;
      }
    };
    std::string error;
    bool ok = engine_->start(
        std::move(classifier), c, [emit](const std::string& m) mutable { emit("error", m); },
        [emit]() mutable { emit("stats", ""); }, &error);
    if (!ok) {
      tsfn_.Release();
      tsfn_ = Napi::ThreadSafeFunction();
      throw coded_error(env, error, "EQUEUE");
    }
    Napi::Array warnings = Napi::Array::New(env);
    for (size_t i = 0; i < engine_->warnings().size(); i++) warnings.Set(static_cast<uint32_t>(i), engine_->warnings()[i]);
    return warnings;
  }

  Napi::Value Reload(const Napi::CallbackInfo& info) {
    if (!engine_->running()) throw Napi::Error::New(info.Env(), "the engine is not running");
    engine_->reload(classifier_from(info[0]));
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    nfsieve::EngineStats s = engine_->stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("generation", static_cast<double>(s.generation));
    o.Set("running", engine_->running());
    Napi::Array qs = Napi::Array::New(env, s.queues.size());
    for (size_t i = 0; i < s.queues.size(); i++) {
      const nfsieve::QueueStatsSnapshot& q = s.queues[i];
      Napi::Object qo = Napi::Object::New(env);
      qo.Set("queue", q.queue);
      qo.Set("received", static_cast<double>(q.received));
      qo.Set("accepted", static_cast<double>(q.accepted));
      qo.Set("dropped", static_cast<double>(q.dropped));
      qo.Set("rejected", static_cast<double>(q.rejected));
      qo.Set("queued", static_cast<double>(q.queued));
      qo.Set("notIp", static_cast<double>(q.not_ip));
      qo.Set("bytes", static_cast<double>(q.bytes));
      qo.Set("enobufs", static_cast<double>(q.enobufs));
      qo.Set("verdictErrors", static_cast<double>(q.verdict_errors));
      qo.Set("receiveErrors", static_cast<double>(q.receive_errors));
      qo.Set("batches", static_cast<double>(q.batches));
      Napi::Object k = Napi::Object::New(env);
      k.Set("present", q.kernel.present);
      k.Set("queueTotal", q.kernel.queue_total);
      k.Set("copyRange", q.kernel.copy_range);
      k.Set("queueDropped", q.kernel.queue_dropped);
      k.Set("userDropped", q.kernel.user_dropped);
      k.Set("idSequence", q.kernel.id_sequence);
      qo.Set("kernel", k);
      qs.Set(static_cast<uint32_t>(i), qo);
    }
    o.Set("queues", qs);
    const char* names[4] = {"hits", "bytes", "overLimit", "evictions"};
    const std::vector<uint64_t>* lists[4] = {&s.hits, &s.bytes, &s.over_limit, &s.evictions};
    for (int kind = 0; kind < 4; kind++) {
      const std::vector<uint64_t>& src = *lists[kind];
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, src.size() * 8);
      if (!src.empty()) std::memcpy(ab.Data(), src.data(), src.size() * 8);
      napi_value arr;
      napi_create_typedarray(env, napi_biguint64_array, src.size(), ab, 0, &arr);
      o.Set(names[kind], Napi::Value(env, arr));
    }
    return o;
  }

  std::string name_arg(const Napi::CallbackInfo& info) {
    if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "set name must be a string");
    return info[0].As<Napi::String>().Utf8Value();
  }

  void check(const Napi::Env& env, int status, const std::string& name) {
    if (status == nfsieve::kNoSuchSet) throw Napi::Error::New(env, "no set named '" + name + "' in the running policy");
    if (status == nfsieve::kWrongKind) throw Napi::Error::New(env, "set '" + name + "' holds the other kind of element");
  }

  // The same operations as the Classifier's (classifier_glue.cc), on the running table.
  Napi::Value SetAdd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = name_arg(info);
    nfsieve::SetElement e = element_arg(env, info[1]);
    bool changed = false;
    check(env, engine_->set_add(name, e, expiry_arg(env, info[2]), &changed), name);
    return Napi::Boolean::New(env, changed);
  }

  Napi::Value SetRemove(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = name_arg(info);
    nfsieve::SetElement e = element_arg(env, info[1]);
    bool changed = false;
    check(env, engine_->set_remove(name, e, origins_arg(env, info[2]), &changed), name);
    return Napi::Boolean::New(env, changed);
  }

  Napi::Value SetFlush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = name_arg(info);
    size_t n = 0;
    check(env, engine_->set_flush(name, origins_arg(env, info[1]), &n), name);
    return Napi::Number::New(env, static_cast<double>(n));
  }

  Napi::Value SetTest(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = name_arg(info);
    nfsieve::SetElement e = element_arg(env, info[1]);
    bool matched = false;
    check(env, engine_->set_test(name, e, &matched), name);
    return Napi::Boolean::New(env, matched);
  }

  Napi::Value SetList(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = name_arg(info);
    std::vector<nfsieve::MemberInfo> members;
    check(env, engine_->set_list(name, &members), name);
    return members_js(env, members);
  }

  Napi::Value SetExpire(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(engine_->set_expire()));
  }

  Napi::Value SetInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (const auto& s : engine_->set_summaries()) out.Set(i++, summary_js(env, s.name, s.kind, s.sizes));
    return out;
  }

  // close() -> Promise: stop on a worker thread (joins may take a moment), then release events.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    closed_ = true;
    Napi::ThreadSafeFunction tsfn = tsfn_;
    tsfn_ = Napi::ThreadSafeFunction();
    StopWorker* w = new StopWorker(env, engine_, tsfn);
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }
};

}  // namespace

Napi::Function DefineQueueEngine(Napi::Env env) { return QueueEngineWrap::Define(env); }

}  // namespace glue
