// Node-API glue for the queue engine (native/nfqueue/engine.h): exported as
// the QueueEngine class. Events reach JavaScript through one
// ThreadSafeFunction, never once per packet; the function is unref'd so an
// attached queue alone does not keep the process alive, and a throwing
// listener is contained here.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "core/classify.h"
#include "glue.h"
#include "nfqueue/engine.h"

namespace glue {
namespace {

struct Event {
  std::string kind;
  std::string message;
};

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
    return DefineClass(env, "QueueEngine", {
      InstanceMethod<&QueueEngineWrap::Start>("start"),
      InstanceMethod<&QueueEngineWrap::Reload>("reload"),
      InstanceMethod<&QueueEngineWrap::Stats>("stats"),
      InstanceMethod<&QueueEngineWrap::SetAddress>("setAddress"),
      InstanceMethod<&QueueEngineWrap::SetSpi>("setSpi"),
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

  // start(table, {queues, copyRange, maxLen, rcvbuf, failOpen, conntrack, gso, rejectMark, batch, statsIntervalMs}, onEvent)
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
      if (!q.IsNumber() || q.As<Napi::Number>().Uint32Value() > 65535) throw Napi::RangeError::New(env, "queue numbers are 0-65535");
      c.queues.push_back(static_cast<uint16_t>(q.As<Napi::Number>().Uint32Value()));
    }
    c.socket.copy_range = opt_u32(o, "copyRange", 256);
    c.socket.max_len = opt_u32(o, "maxLen", 4096);
    c.socket.rcvbuf = opt_u32(o, "rcvbuf", 8u << 20);
    c.socket.fail_open = opt_bool(o, "failOpen", false);
    c.socket.conntrack = opt_bool(o, "conntrack", false);
    c.socket.gso = opt_bool(o, "gso", true);
    c.batch = static_cast<int>(std::min<uint32_t>(std::max<uint32_t>(opt_u32(o, "batch", 64), 1), 64));
    c.stats_interval_ms = static_cast<int>(opt_u32(o, "statsIntervalMs", 0));
    Napi::Value rm = o.Get("rejectMark");
    if (rm.IsNumber()) {
      c.reject_mark_set = true;
      c.reject_mark = rm.As<Napi::Number>().Uint32Value();
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "nfsieve-queue-events", 0, 1);
    tsfn_.Unref(env);
    Napi::ThreadSafeFunction tsfn = tsfn_;
    auto emit = [tsfn](const std::string& kind, const std::string& message) mutable {
      Event* e = new Event{kind, message};
      napi_status s = tsfn.NonBlockingCall(e, [](Napi::Env env, Napi::Function fn, Event* ev) {
        std::unique_ptr<Event> owned(ev);
        if (env == nullptr || fn.IsEmpty()) return;
        try {
          fn.Call({Napi::String::New(env, owned->kind), Napi::String::New(env, owned->message)});
        } catch (const Napi::Error&) {
          // A listener threw: never let it take the process down.
        }
      });
      if (s != napi_ok) delete e;
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

  Napi::Value SetAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString() || !is_bytes(info[3])) throw Napi::TypeError::New(env, "setAddress(name, add, family, bytes, length)");
    Bytes b = bytes_of(info[3]);
    int family = info[2].ToNumber().Int32Value();
    int length = info[4].ToNumber().Int32Value();
    if ((family != 4 && family != 6) || b.length != (family == 4 ? 4u : 16u) || length < 0 || length > (family == 4 ? 32 : 128))
      throw Napi::RangeError::New(env, "address bytes or prefix length do not fit the family");
    bool changed = false;
    std::string name = info[0].As<Napi::String>().Utf8Value();
    if (!engine_->set_address(name, info[1].ToBoolean(), family, b.data, length, &changed))
      throw Napi::Error::New(env, "no address set named '" + name + "' in the running policy");
    return Napi::Boolean::New(env, changed);
  }

  Napi::Value SetSpi(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "setSpi(name, add, lo, hi)");
    double lo = info[2].ToNumber().DoubleValue(), hi = info[3].ToNumber().DoubleValue();
    if (!(lo >= 0 && hi <= 4294967295.0 && lo <= hi)) throw Napi::RangeError::New(env, "SPI range out of bounds");
    bool changed = false;
    std::string name = info[0].As<Napi::String>().Utf8Value();
    if (!engine_->set_spi(name, info[1].ToBoolean(), static_cast<uint32_t>(lo), static_cast<uint32_t>(hi), &changed))
      throw Napi::Error::New(env, "no SPI set named '" + name + "' in the running policy");
    return Napi::Boolean::New(env, changed);
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
