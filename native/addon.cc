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
#include "core/reserve.h"
#include "core/table.h"
#include "glue.h"
#include "nfqueue/packet_tx.h"

namespace {

using glue::Bytes;
using glue::bytes_of;
using glue::is_bytes;
using glue::link_type_arg;
using nfsieve::Decoded;

// decodeFrame(linkType, frame) -> Buffer holding one 108-byte record (sizeof(Decoded), static_asserted in core/decode.h).
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

// Checks the arguments of sweepField and sweepFieldHeld (throws when they are wrong) and sweeps.
void sweep_args(const Napi::CallbackInfo& info, const char* name, nfsieve::SweepResult* r) {
  Napi::Env env = info.Env();
  const std::string usage = std::string(name) + "(Float64Array, Float64Array, Uint32Array, Uint32Array, rules, top)";
  const napi_typedarray_type want[4] = {napi_float64_array, napi_float64_array, napi_uint32_array, napi_uint32_array};
  for (int i = 0; i < 4; i++)
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != want[i])
      throw Napi::TypeError::New(env, usage);
  if (!info[4].IsNumber() || !info[5].IsNumber()) throw Napi::TypeError::New(env, usage);
  Napi::Float64Array lo = info[0].As<Napi::Float64Array>(), hi = info[1].As<Napi::Float64Array>();
  Napi::Uint32Array rule = info[2].As<Napi::Uint32Array>(), always = info[3].As<Napi::Uint32Array>();
  if (hi.ElementLength() != lo.ElementLength() || rule.ElementLength() != lo.ElementLength())
    throw Napi::RangeError::New(env, std::string(name) + ": lo, hi and rule must have one entry per interval");
  double rules = info[4].As<Napi::Number>().DoubleValue();
  if (!(rules >= 0 && rules < 4294967296.0)) throw Napi::RangeError::New(env, std::string(name) + ": bad rule count");
  nfsieve::SweepInput in{lo.Data(),
                         hi.Data(),
                         rule.Data(),
                         lo.ElementLength(),
                         always.Data(),
                         always.ElementLength(),
                         static_cast<uint32_t>(rules),
                         info[5].As<Napi::Number>().DoubleValue()};
  const char* error = nullptr;
  if (!nfsieve::sweep_field(in, r, &error)) throw Napi::RangeError::New(env, std::string(name) + ": " + error);
}

// The boundaries, classes, vector count and density of a sweep, as a JavaScript object.
Napi::Object sweep_object(Napi::Env env, nfsieve::SweepResult* r) {
  const size_t b = r->boundaries.size(), c = r->classes.size();
  Napi::Object o = Napi::Object::New(env);
  o.Set("boundaries", Napi::Float64Array::New(env, b, adopt(env, std::move(r->boundaries)), 0));
  o.Set("classes", Napi::Uint32Array::New(env, c, adopt(env, std::move(r->classes)), 0));
  o.Set("vectorCount", Napi::Number::New(env, r->vectors.count()));
  o.Set("density", Napi::Number::New(env, r->density));
  return o;
}

// sweepField(lo: Float64Array, hi: Float64Array, rule: Uint32Array, always: Uint32Array, rules, top)
//   -> { boundaries: Float64Array, classes: Uint32Array, vectors: Uint32Array, vectorCount, density }
// The compiler's sweep of one narrow field (native/compile/sweep.h).
Napi::Value SweepField(const Napi::CallbackInfo& info) {
  nfsieve::SweepResult r;
  sweep_args(info, "sweepField", &r);
  std::vector<uint64_t> vectors(size_t(r.vectors.count()) * r.vectors.words());
  r.vectors.copy_vectors(reinterpret_cast<uint8_t*>(vectors.data()));
  const size_t v = vectors.size();
  Napi::Object o = sweep_object(info.Env(), &r);
  o.Set("vectors", Napi::Uint32Array::New(info.Env(), 2 * v, adopt(info.Env(), std::move(vectors)), 0));
  return o;
}

// sweepFieldHeld(same arguments) -> { boundaries, classes, vectorCount, density, held }: as sweepField,
// but the vectors stay in native memory (outside the JavaScript heap's accounting, so a table of a hundred
// MiB does not set off full collections) until writeHeldVectors() copies them into the table.
Napi::Value SweepFieldHeld(const Napi::CallbackInfo& info) {
  auto* r = new nfsieve::SweepResult();
  try {
    sweep_args(info, "sweepFieldHeld", r);
  } catch (...) {
    delete r;
    throw;
  }
  Napi::Object o = sweep_object(info.Env(), r);
  o.Set("held", Napi::External<nfsieve::SweepResult>::New(info.Env(), r, [](Napi::Env, nfsieve::SweepResult* p) { delete p; }));
  return o;
}

// writeHeldVectors(held, table: Uint8Array, vectorsOff, summariesOff): the held vectors back to back at
// vectorsOff and their summaries at summariesOff (the table's layout), then frees them; once per sweep.
Napi::Value WriteHeldVectors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "writeHeldVectors(held, Uint8Array, vectorsOff, summariesOff)";
  if (!info[0].IsExternal() || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      !info[2].IsNumber() || !info[3].IsNumber())
    throw Napi::TypeError::New(env, usage);
  nfsieve::SweepResult* r = info[0].As<Napi::External<nfsieve::SweepResult>>().Data();
  Napi::Uint8Array dst = info[1].As<Napi::Uint8Array>();
  const nfsieve::VectorPool& pool = r->vectors;
  const double vOff = info[2].As<Napi::Number>().DoubleValue(), sOff = info[3].As<Napi::Number>().DoubleValue();
  const double vBytes = double(pool.count()) * double(pool.words()) * 8;
  const size_t swords = (pool.words() + 63) / 64;
  const double sBytes = double(pool.count()) * double(swords) * 8;
  const double size = double(dst.ElementLength());
  if (!(vOff >= 0 && sOff >= 0 && vOff == double(size_t(vOff)) && sOff == double(size_t(sOff)) && vOff + vBytes <= size &&
        sOff + sBytes <= size && (vOff + vBytes <= sOff || sOff + sBytes <= vOff)))
    throw Napi::RangeError::New(env, "writeHeldVectors: offsets out of range");
  if (r->written) throw Napi::Error::New(env, "writeHeldVectors: the vectors were already written");
  nfsieve::advise_huge_pages(dst.Data() + size_t(vOff), size_t(vBytes));
  pool.copy_vectors(dst.Data() + size_t(vOff));
  pool.write_summaries(dst.Data() + size_t(sOff));
  r->vectors.clear();
  r->written = true;
  return env.Undefined();
}

// crc32(bytes: Uint8Array) -> number: the table checksum as the loader computes it (the compiler seals with it).
Napi::Value Crc32(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), "crc32(Uint8Array)");
  glue::Bytes b = glue::bytes_of(info[0]);
  return Napi::Number::New(info.Env(), nfsieve::crc32(b.data, b.length));
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
  exports.Set("sweepFieldHeld", Napi::Function::New(env, SweepFieldHeld));
  exports.Set("writeHeldVectors", Napi::Function::New(env, WriteHeldVectors));
  exports.Set("crc32", Napi::Function::New(env, Crc32));
  exports.Set("malformedNames", Napi::Function::New(env, MalformedNames));
  exports.Set("recordSize", Napi::Number::New(env, sizeof(Decoded)));
  return exports;
}

}  // namespace

NODE_API_MODULE(nfsieve, Init)
