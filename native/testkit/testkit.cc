// The test kit addon (nfsieve_testkit.node): native helpers for test/ and
// bench/ only, never shipped in the package (binding.gyp builds it only when
// native/testkit/ is there). Loaded by test/support/testkit.ts.
#include <napi.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "../nfqueue/moderation.h"
#include "linear.h"

namespace {

// linearClassifyTuples(rules: Uint32Array(7n), tuples: Uint32Array(5m), out: Int32Array(m)): the
// first-match linear scan baseline (ClassBench). Each rule is 7 words:
// src_lo src_hi dst_lo dst_hi sport_lo|sport_hi<<16 dport_lo|dport_hi<<16 proto|mask<<8.
Napi::Value LinearClassifyTuples(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  for (int i = 0; i < 3; i++)
    if (!info[i].IsTypedArray()) throw Napi::TypeError::New(env, "linearClassifyTuples(Uint32Array, Uint32Array, Int32Array)");
  Napi::TypedArray r = info[0].As<Napi::TypedArray>(), t = info[1].As<Napi::TypedArray>(), o = info[2].As<Napi::TypedArray>();
  if (r.TypedArrayType() != napi_uint32_array || t.TypedArrayType() != napi_uint32_array ||
      o.TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, "linearClassifyTuples(Uint32Array, Uint32Array, Int32Array)");
  size_t rules = r.ElementLength() / 7, n = t.ElementLength() / 5;
  if (o.ElementLength() < n) throw Napi::RangeError::New(env, "out must hold one entry per tuple");
  const nfsieve::TupleRule* rr = reinterpret_cast<const nfsieve::TupleRule*>(r.As<Napi::Uint32Array>().Data());
  const uint32_t* tt = t.As<Napi::Uint32Array>().Data();
  int32_t* oo = o.As<Napi::Int32Array>().Data();
  for (size_t i = 0; i < n; i++)
    oo[i] = nfsieve::linear_first_match(rr, rules, tt[5 * i], tt[5 * i + 1], tt[5 * i + 2], tt[5 * i + 3], tt[5 * i + 4]);
  return Napi::Number::New(env, static_cast<double>(n));
}

// moderate(windowUs, target, batches: Float64Array(5n)): drive one Moderator
// (native/nfqueue/moderation.h) over made-up receives, each five numbers:
// count, max, begin_ns, waited_ns, end_ns. Returns a Float64Array(2n): per
// receive, the sleep it chose (ns) and its rate estimate (packets/s) after it.
Napi::Value Moderate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, "moderate(windowUs, target, Float64Array)");
  nfsieve::Moderator m(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Uint32Value());
  Napi::Float64Array in = info[2].As<Napi::Float64Array>();
  const size_t n = in.ElementLength() / 5;
  Napi::Float64Array out = Napi::Float64Array::New(env, 2 * n);
  for (size_t i = 0; i < n; i++) {
    const double* b = in.Data() + 5 * i;
    out[2 * i] = static_cast<double>(m.after_batch(static_cast<int>(b[0]), static_cast<int>(b[1]), static_cast<uint64_t>(b[2]),
                                                   static_cast<uint64_t>(b[3]), static_cast<uint64_t>(b[4])));
    out[2 * i + 1] = m.rate_per_s();
  }
  return out;
}

// setThreadCpus(cpus: number[]): number[]. Runs the calling thread (the
// JavaScript thread) on these CPUs only and returns those it could run on
// before, to restore them. The ClassBench bench measures on the CPU rte_acl
// is pinned to (bench/rteacl.ts, -l): on this VM one vCPU ran lookups 1.5x
// slower than the other for minutes at a time.
Napi::Value SetThreadCpus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "setThreadCpus(number[])");
  Napi::Array list = info[0].As<Napi::Array>();
  cpu_set_t want, had;
  CPU_ZERO(&want);
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    const double c = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(c >= 0 && c < CPU_SETSIZE) || c != static_cast<double>(static_cast<int>(c)))
      throw Napi::RangeError::New(env, "setThreadCpus: CPU numbers are integers from 0 to " + std::to_string(CPU_SETSIZE - 1));
    CPU_SET(static_cast<int>(c), &want);
  }
  if (sched_getaffinity(0, sizeof(had), &had) != 0 || sched_setaffinity(0, sizeof(want), &want) != 0)
    throw Napi::Error::New(env, std::string("setThreadCpus: ") + std::strerror(errno));
  Napi::Array out = Napi::Array::New(env);
  for (int c = 0, n = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &had)) out.Set(n++, c);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("linearClassifyTuples", Napi::Function::New(env, LinearClassifyTuples));
  exports.Set("moderate", Napi::Function::New(env, Moderate));
  exports.Set("setThreadCpus", Napi::Function::New(env, SetThreadCpus));
  return exports;
}

}  // namespace

NODE_API_MODULE(nfsieve_testkit, Init)
