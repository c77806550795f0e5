// Node-API glue, module entry: the decoder exports, plus the two classes
// defined in classifier_glue.cc and queue_glue.cc. Only these glue files
// include napi.h; each export checks its arguments cheaply and calls into
// native/core or native/nfqueue (src/native.ts declares every export).
#include <napi.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "compile/sweep.h"
#include "core/decode.h"
#include "glue.h"
#include "nfqueue/packet_tx.h"

namespace {

using glue::Bytes;
using glue::bytes_of;
using glue::is_bytes;
using glue::link_type_arg;
using nfsieve::Decoded;

// decodeFrame(linkType, frame) -> Buffer holding one 104-byte record (sizeof(Decoded), static_asserted in core/decode.h).
Napi::Value DecodeFrame(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t lt = link_type_arg(info, 0);
  if (!is_bytes(info[1])) throw Napi::TypeError::New(env, "frame must be a Uint8Array");
  Bytes frame = bytes_of(info[1]);
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, sizeof(Decoded));
  nfsieve::decode_frame(lt, frame.data, frame.length, reinterpret_cast<Decoded*>(out.Data()));
  return out;
}

// decodeBatch(linkType, data, offsets, out): frame i is data[offsets[i] ..
// offsets[i+1]); its record goes to out[sizeof(Decoded)*i ..]. Returns the frame count.
Napi::Value DecodeBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t lt = link_type_arg(info, 0);
  if (!is_bytes(info[1]) || !info[2].IsTypedArray() || !is_bytes(info[3]))
    throw Napi::TypeError::New(env, "decodeBatch(linkType, Uint8Array, Uint32Array, Uint8Array)");
  Bytes data = bytes_of(info[1]);
  Bytes out = bytes_of(info[3]);
  const uint32_t* offsets = nullptr;
  const size_t count = glue::frame_offsets(env, info[2], data, &offsets);
  if (out.length < count * sizeof(Decoded)) throw Napi::RangeError::New(env, "output buffer too small for the frame count");
  uint8_t* dst = const_cast<uint8_t*>(out.data);
  for (size_t i = 0; i < count; i++) {
    Decoded d;
    nfsieve::decode_frame(lt, data.data + offsets[i], offsets[i + 1] - offsets[i], &d);
    std::memcpy(dst + i * sizeof(Decoded), &d, sizeof(Decoded));
  }
  return Napi::Number::New(env, static_cast<double>(count));
}

// sendFrames(ifname, frames: Uint8Array[], repeat) -> count sent (AF_PACKET, this namespace).
Napi::Value SendFrames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsArray()) throw Napi::TypeError::New(env, "sendFrames(ifname, frames[], repeat)");
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<std::pair<const uint8_t*, size_t>> frames;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value f = arr.Get(i);
    if (!is_bytes(f)) throw Napi::TypeError::New(env, "frames must be Uint8Arrays");
    Bytes b = bytes_of(f);
    frames.emplace_back(b.data, b.length);
  }
  long repeat = info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : 1;
  std::string error;
  long n = nfsieve::send_frames(info[0].As<Napi::String>().Utf8Value(), frames, repeat, &error);
  if (n < 0) throw Napi::Error::New(env, error);
  return Napi::Number::New(env, static_cast<double>(n));
}

// A typed array over a vector's memory, which the array then owns (no copy).
template <typename T>
Napi::ArrayBuffer adopt(Napi::Env env, std::vector<T>&& v) {
  auto* owned = new std::vector<T>(std::move(v));
  if (owned->empty()) owned->reserve(1);
  return Napi::ArrayBuffer::New(
      env, owned->data(), owned->size() * sizeof(T), [](Napi::Env, void*, std::vector<T>* hint) { delete hint; }, owned);
}

// sweepField(lo: Float64Array, hi: Float64Array, rule: Uint32Array, always: Uint32Array, rules, top)
//   -> { boundaries: Float64Array, classes: Uint32Array, vectors: Uint32Array, vectorCount, density }
// The compiler's sweep of one narrow field (native/compile/sweep.h).
Napi::Value SweepField(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "sweepField(Float64Array, Float64Array, Uint32Array, Uint32Array, rules, top)";
  const napi_typedarray_type want[4] = {napi_float64_array, napi_float64_array, napi_uint32_array, napi_uint32_array};
  for (int i = 0; i < 4; i++)
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != want[i])
      throw Napi::TypeError::New(env, usage);
  if (!info[4].IsNumber() || !info[5].IsNumber()) throw Napi::TypeError::New(env, usage);
  Napi::Float64Array lo = info[0].As<Napi::Float64Array>(), hi = info[1].As<Napi::Float64Array>();
  Napi::Uint32Array rule = info[2].As<Napi::Uint32Array>(), always = info[3].As<Napi::Uint32Array>();
  if (hi.ElementLength() != lo.ElementLength() || rule.ElementLength() != lo.ElementLength())
    throw Napi::RangeError::New(env, "sweepField: lo, hi and rule must have one entry per interval");
  double rules = info[4].As<Napi::Number>().DoubleValue();
  if (!(rules >= 0 && rules < 4294967296.0)) throw Napi::RangeError::New(env, "sweepField: bad rule count");
  nfsieve::SweepInput in{lo.Data(),
                         hi.Data(),
                         rule.Data(),
                         lo.ElementLength(),
                         always.Data(),
                         always.ElementLength(),
                         static_cast<uint32_t>(rules),
                         info[5].As<Napi::Number>().DoubleValue()};
  nfsieve::SweepResult r;
  const char* error = nullptr;
  if (!nfsieve::sweep_field(in, &r, &error)) throw Napi::RangeError::New(env, std::string("sweepField: ") + error);
  const size_t b = r.boundaries.size(), c = r.classes.size(), v = r.vectors.size();
  Napi::Object o = Napi::Object::New(env);
  o.Set("boundaries", Napi::Float64Array::New(env, b, adopt(env, std::move(r.boundaries)), 0));
  o.Set("classes", Napi::Uint32Array::New(env, c, adopt(env, std::move(r.classes)), 0));
  o.Set("vectors", Napi::Uint32Array::New(env, 2 * v, adopt(env, std::move(r.vectors)), 0));
  o.Set("vectorCount", Napi::Number::New(env, r.vector_count));
  o.Set("density", Napi::Number::New(env, r.density));
  return o;
}

Napi::Value MalformedNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array names = Napi::Array::New(env, nfsieve::kMalformedCount);
  names.Set(0u, env.Null());
  for (uint32_t i = 1; i < nfsieve::kMalformedCount; i++)
    names.Set(i, Napi::String::New(env, nfsieve::malformed_name(static_cast<uint8_t>(i))));
  return names;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Classifier", glue::DefineClassifier(env));
  exports.Set("QueueEngine", glue::DefineQueueEngine(env));
  exports.Set("decodeFrame", Napi::Function::New(env, DecodeFrame));
  exports.Set("decodeBatch", Napi::Function::New(env, DecodeBatch));
  exports.Set("sendFrames", Napi::Function::New(env, SendFrames));
  exports.Set("sweepField", Napi::Function::New(env, SweepField));
  exports.Set("malformedNames", Napi::Function::New(env, MalformedNames));
  exports.Set("recordSize", Napi::Number::New(env, sizeof(Decoded)));
  return exports;
}

}  // namespace

NODE_API_MODULE(nfsieve, Init)
