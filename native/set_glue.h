// Named-set arguments and results shared by the Classifier and QueueEngine
// glue: one element shape ({family, bytes, length} or {lo, hi}), one member
// listing, one summary.
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "core/sets.h"
#include "glue.h"

namespace glue {

// {family: 4|6, bytes, length} -> an address element; {lo, hi} -> an SPI range.
inline nfsieve::SetElement element_arg(const Napi::Env& env, const Napi::Value& v) {
  nfsieve::SetElement e;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "set element must be {family, bytes, length} or {lo, hi}");
  Napi::Object o = v.As<Napi::Object>();
  if (o.Has("family")) {
    e.kind = nfsieve::kSetAddress;
    e.family = o.Get("family").ToNumber().Int32Value();
    Napi::Value b = o.Get("bytes");
    if ((e.family != 4 && e.family != 6) || !is_bytes(b))
      throw Napi::TypeError::New(env, "address element: {family: 4|6, bytes, length}");
    Bytes bytes = bytes_of(b);
    e.length = o.Get("length").ToNumber().Int32Value();
    if (bytes.length != (e.family == 4 ? 4u : 16u) || e.length < 0 || e.length > (e.family == 4 ? 32 : 128))
      throw Napi::RangeError::New(env, "address bytes or prefix length do not fit the family");
    std::memcpy(e.bytes, bytes.data, bytes.length);
    return e;
  }
  e.kind = nfsieve::kSetSpi;
  double lo = o.Get("lo").ToNumber().DoubleValue(), hi = o.Get("hi").ToNumber().DoubleValue();
  if (!(lo >= 0 && hi <= 4294967295.0 && lo <= hi)) throw Napi::RangeError::New(env, "SPI range out of bounds");
  e.lo = static_cast<uint32_t>(lo);
  e.hi = static_cast<uint32_t>(hi);
  return e;
}

inline uint8_t origins_arg(const Napi::Env& env, const Napi::Value& v) {
  uint32_t o = v.ToNumber().Uint32Value();
  if (o == 0 || o > nfsieve::kOriginAll) throw Napi::RangeError::New(env, "origins: 1 file, 2 live, 3 both");
  return static_cast<uint8_t>(o);
}

// Timeout in milliseconds (0: none) -> steady-clock expiry (0: none).
inline int64_t expiry_arg(const Napi::Env& env, const Napi::Value& v) {
  if (v.IsUndefined()) return 0;
  double ms = v.ToNumber().DoubleValue();
  if (!(ms >= 0 && ms <= 4294967295000.0)) throw Napi::RangeError::New(env, "timeout out of range");
  return ms == 0 ? 0 : nfsieve::steady_now_ms() + static_cast<int64_t>(ms);
}

// [{family, bytes, length} | {lo, hi}, origins, remainingMs (0: none)]
inline Napi::Array members_js(const Napi::Env& env, const std::vector<nfsieve::MemberInfo>& members) {
  const int64_t now = nfsieve::steady_now_ms();
  Napi::Array out = Napi::Array::New(env, members.size());
  for (size_t i = 0; i < members.size(); i++) {
    const nfsieve::MemberInfo& m = members[i];
    Napi::Object o = Napi::Object::New(env);
    if (m.element.kind == nfsieve::kSetAddress) {
      o.Set("family", m.element.family);
      o.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, m.element.bytes, m.element.family == 4 ? 4 : 16));
      o.Set("length", m.element.length);
    } else {
      o.Set("lo", static_cast<double>(m.element.lo));
      o.Set("hi", static_cast<double>(m.element.hi));
    }
    o.Set("origins", m.origins);
    o.Set("remainingMs", static_cast<double>(m.expires_ms ? std::max<int64_t>(1, m.expires_ms - now) : 0));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

inline Napi::Object summary_js(const Napi::Env& env, const std::string& name, uint8_t kind, const nfsieve::SetSizes& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name);
  o.Set("kind", kind == nfsieve::kSetAddress ? "address" : "spi");
  o.Set("size", static_cast<double>(s.total));
  o.Set("file", static_cast<double>(s.file));
  o.Set("live", static_cast<double>(s.live));
  return o;
}

}  // namespace glue
