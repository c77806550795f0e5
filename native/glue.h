// Shared helpers of the Node-API glue files (addon.cc, classifier_glue.cc,
// queue_glue.cc): argument checks that throw JavaScript errors.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "core/decode.h"

namespace glue {

inline bool is_bytes(const Napi::Value& v) { return v.IsTypedArray() || v.IsBuffer(); }

/** An Error carrying one of src/errors.ts's codes ("ETABLE", "EQUEUE"): the CLI decides by code. */
inline Napi::Error coded_error(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

struct Bytes {
  const uint8_t* data;
  size_t length;
};

inline Bytes bytes_of(const Napi::Value& v) {
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  Napi::ArrayBuffer ab = ta.ArrayBuffer();
  const uint8_t* base = static_cast<const uint8_t*>(ab.Data()) + ta.ByteOffset();
  return {base, ta.ByteLength()};
}

inline uint32_t link_type_arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "link type must be a number");
  uint32_t lt = info[i].As<Napi::Number>().Uint32Value();
  if (!nfsieve::link_type_supported(lt)) throw Napi::RangeError::New(info.Env(), "unsupported link type " + std::to_string(lt));
  return lt;
}

// Frame i of a batch is data[offsets[i] .. offsets[i+1]): the offsets argument
// (a non-empty Uint32Array) checked against the data once, before any frame is
// read. Returns the frame count.
inline size_t frame_offsets(const Napi::Env& env, const Napi::Value& v, const Bytes& data, const uint32_t** offsets) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "offsets must be a non-empty Uint32Array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint32_array || ta.ElementLength() < 1)
    throw Napi::TypeError::New(env, "offsets must be a non-empty Uint32Array");
  const uint32_t* o = ta.As<Napi::Uint32Array>().Data();
  const size_t count = ta.ElementLength() - 1;
  for (size_t i = 0; i < count; i++)
    if (o[i] > o[i + 1] || o[i + 1] > data.length)
      throw Napi::RangeError::New(env, "frame offsets out of order or past the data");
  *offsets = o;
  return count;
}

Napi::Function DefineClassifier(Napi::Env env);
Napi::Function DefineQueueEngine(Napi::Env env);

}  // namespace glue
