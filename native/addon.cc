// Node-API glue: the only file that knows about napi.h. Each export checks its
// arguments cheaply (types, lengths, offsets) and calls into native/core;
// TypeScript has already validated them with better messages (src/native.ts
// declares every export).
#include <napi.h>

#include <cstring>

#include "core/decode.h"

namespace {

using nfsieve::Decoded;

bool is_bytes(const Napi::Value& v) { return v.IsTypedArray() || v.IsBuffer(); }

struct Bytes {
  const uint8_t* data;
  size_t length;
};

Bytes bytes_of(const Napi::Value& v) {
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  Napi::ArrayBuffer ab = ta.ArrayBuffer();
  const uint8_t* base = static_cast<const uint8_t*>(ab.Data()) + ta.ByteOffset();
  return {base, ta.ByteLength()};
}

uint32_t link_type_arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "link type must be a number");
  uint32_t lt = info[i].As<Napi::Number>().Uint32Value();
  if (!nfsieve::link_type_supported(lt))
    throw Napi::RangeError::New(info.Env(), "unsupported link type " + std::to_string(lt));
  return lt;
}

// decodeFrame(linkType, frame) -> Buffer holding one 96-byte record.
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
// offsets[i+1]); its record goes to out[96*i ..]. Returns the frame count.
Napi::Value DecodeBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t lt = link_type_arg(info, 0);
  if (!is_bytes(info[1]) || !info[2].IsTypedArray() || !is_bytes(info[3]))
    throw Napi::TypeError::New(env, "decodeBatch(linkType, Uint8Array, Uint32Array, Uint8Array)");
  Napi::TypedArray off_ta = info[2].As<Napi::TypedArray>();
  if (off_ta.TypedArrayType() != napi_uint32_array || off_ta.ElementLength() < 1)
    throw Napi::TypeError::New(env, "offsets must be a non-empty Uint32Array");
  Bytes data = bytes_of(info[1]);
  Bytes out = bytes_of(info[3]);
  const uint32_t* offsets = reinterpret_cast<const uint32_t*>(
      static_cast<const uint8_t*>(off_ta.ArrayBuffer().Data()) + off_ta.ByteOffset());
  size_t count = off_ta.ElementLength() - 1;
  if (out.length < count * sizeof(Decoded))
    throw Napi::RangeError::New(env, "output buffer too small for the frame count");
  for (size_t i = 0; i < count; i++) {
    if (offsets[i] > offsets[i + 1] || offsets[i + 1] > data.length)
      throw Napi::RangeError::New(env, "frame offsets out of order or past the data");
  }
  uint8_t* dst = const_cast<uint8_t*>(out.data);
  for (size_t i = 0; i < count; i++) {
    Decoded d;
    nfsieve::decode_frame(lt, data.data + offsets[i], offsets[i + 1] - offsets[i], &d);
    std::memcpy(dst + i * sizeof(Decoded), &d, sizeof(Decoded));
  }
  return Napi::Number::New(env, static_cast<double>(count));
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
  exports.Set("decodeFrame", Napi::Function::New(env, DecodeFrame));
  exports.Set("decodeBatch", Napi::Function::New(env, DecodeBatch));
  exports.Set("malformedNames", Napi::Function::New(env, MalformedNames));
  exports.Set("recordSize", Napi::Number::New(env, sizeof(Decoded)));
  return exports;
}

}  // namespace

NODE_API_MODULE(nfsieve, Init)
