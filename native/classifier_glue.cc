// Node-API glue for a loaded decision table: nfsieve::Classifier with its
// named sets and counters, exported as the Classifier class.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/classify.h"
#include "glue.h"
#include "set_glue.h"

namespace glue {
namespace {

using nfsieve::Decoded;

class ClassifierWrap : public Napi::ObjectWrap<ClassifierWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Classifier",
                       {
                           InstanceMethod<&ClassifierWrap::Classify>("classify"),
                           InstanceMethod<&ClassifierWrap::ClassifyBatch>("classifyBatch"),
                           InstanceMethod<&ClassifierWrap::ClassifyTuples>("classifyTuples"),
                           InstanceMethod<&ClassifierWrap::GetCounters>("counters"),
                           InstanceMethod<&ClassifierWrap::ResetCounters>("resetCounters"),
                           InstanceMethod<&ClassifierWrap::SetAdd>("setAdd"),
                           InstanceMethod<&ClassifierWrap::SetRemove>("setRemove"),
                           InstanceMethod<&ClassifierWrap::SetFlush>("setFlush"),
                           InstanceMethod<&ClassifierWrap::SetTest>("setTest"),
                           InstanceMethod<&ClassifierWrap::SetList>("setList"),
                           InstanceMethod<&ClassifierWrap::SetExpire>("setExpire"),
                           InstanceMethod<&ClassifierWrap::SetInfo>("setInfo"),
                           InstanceMethod<&ClassifierWrap::LimitStats>("limitStats"),
                           InstanceAccessor<&ClassifierWrap::RuleCount>("ruleCount"),
                           InstanceAccessor<&ClassifierWrap::TableBytes>("tableBytes"),
                           InstanceAccessor<&ClassifierWrap::IndexBytes>("indexBytes"),
                           InstanceMethod<&ClassifierWrap::LookupInfo>("lookupInfo"),
                           InstanceAccessor<&ClassifierWrap::LimitBytes>("limitBytes"),
                       });
  }

  explicit ClassifierWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ClassifierWrap>(info) {
    Napi::Env env = info.Env();
    if (!is_bytes(info[0])) throw Napi::TypeError::New(env, "Classifier(table: Uint8Array, index?: object)");
    Bytes t = bytes_of(info[0]);
    nfsieve::IndexLimits limits = index_limits(info[1]);
    std::string error;
    std::unique_ptr<nfsieve::Table> table = nfsieve::Table::load(t.data, t.length, &error);
    if (!table) throw coded_error(env, error, "ETABLE");
    try {
      classifier_.reset(new nfsieve::Classifier(std::move(table), limits));
    } catch (const std::bad_alloc&) {
      throw coded_error(env, "out of memory loading the table (lookup index and rate-limit state)", "ETABLE");
    }
    counters_.reset(new nfsieve::Counters(classifier_->table().rule_count()));
  }

 private:
  std::unique_ptr<nfsieve::Classifier> classifier_;
  std::unique_ptr<nfsieve::Counters> counters_;

  // Index options {combine, work, memory, cuts, cutsMemory, cutsWork, trees, simd, groupIndex, addressFilters} (validated in
  // TypeScript; re-checked here).
  static nfsieve::IndexLimits index_limits(const Napi::Value& v) {
    nfsieve::IndexLimits l;
    if (!v.IsObject()) return l;
    Napi::Object o = v.As<Napi::Object>();
    Napi::Value combine = o.Get("combine"), work = o.Get("work"), memory = o.Get("memory");
    if (combine.IsBoolean()) l.combine = combine.As<Napi::Boolean>().Value();
    Napi::Value cuts = o.Get("cuts"), simd = o.Get("simd");
    if (cuts.IsBoolean())
      l.cuts = cuts.As<Napi::Boolean>().Value() ? nfsieve::IndexLimits::kCutsAuto : nfsieve::IndexLimits::kCutsOff;
    if (cuts.IsString() && cuts.As<Napi::String>().Utf8Value() == "always") l.cuts = nfsieve::IndexLimits::kCutsAlways;
    if (simd.IsBoolean()) l.simd = simd.As<Napi::Boolean>().Value();
    if (simd.IsString() && simd.As<Napi::String>().Utf8Value() == "avx2") l.avx512 = false;
    Napi::Value group_index = o.Get("groupIndex"), filters = o.Get("addressFilters");
    if (group_index.IsBoolean()) l.group_index = group_index.As<Napi::Boolean>().Value();
    if (filters.IsBoolean()) l.address_filters = filters.As<Napi::Boolean>().Value();
    Napi::Value trees = o.Get("trees");
    if (trees.IsString()) {
      const std::string t = trees.As<Napi::String>().Utf8Value();
      if (t == "cuts") l.tree = nfsieve::IndexLimits::kTreeCuts;
      if (t == "splits") l.tree = nfsieve::IndexLimits::kTreeSplits;
    }
    auto count = [&](const Napi::Value& n, uint64_t* out) {
      if (!n.IsNumber()) return;
      double d = n.As<Napi::Number>().DoubleValue();
      if (!(d >= 0 && d <= 9007199254740991.0))
        throw Napi::RangeError::New(v.Env(), "index limits must be non-negative integers");
      *out = static_cast<uint64_t>(d);
    };
    count(work, &l.work);
    count(memory, &l.memory);
    count(o.Get("cutsMemory"), &l.cuts_memory);
    count(o.Get("cutsWork"), &l.cuts_work);
    return l;
  }

  // Metadata object {in, out, ctstate, mark}; the strings live in `keep`.
  static nfsieve::Meta meta_of(const Napi::Value& v, std::string keep[2]) {
    nfsieve::Meta m;
    if (!v.IsObject()) {
      m.now_ns = nfsieve::monotonic_ns();
      return m;
    }
    Napi::Object o = v.As<Napi::Object>();
    const char* names[2] = {"in", "out"};
    for (int i = 0; i < 2; i++) {
      Napi::Value s = o.Get(names[i]);
      if (!s.IsString()) continue;
      keep[i] = s.As<Napi::String>().Utf8Value();
      if (keep[i].size() > 255) keep[i].resize(255);
      if (i == 0) {
        m.in = keep[0].data();
        m.in_len = static_cast<uint8_t>(keep[0].size());
      } else {
        m.out = keep[1].data();
        m.out_len = static_cast<uint8_t>(keep[1].size());
      }
    }
    Napi::Value ct = o.Get("ctstate");
    if (ct.IsNumber()) m.ctstate = static_cast<uint8_t>(ct.As<Napi::Number>().Uint32Value() & 7);
    Napi::Value mark = o.Get("mark");
    if (mark.IsNumber()) m.mark = mark.As<Napi::Number>().Uint32Value();
    Napi::Value now = o.Get("now");  // injected clock (ns) for rate limits
    if (now.IsBigInt()) {
      bool lossless;
      m.now_ns = now.As<Napi::BigInt>().Uint64Value(&lossless);
    } else if (now.IsNumber()) {
      double d = now.As<Napi::Number>().DoubleValue();
      m.now_ns = d > 0 ? static_cast<uint64_t>(d) : 0;
    } else {
      m.now_ns = nfsieve::monotonic_ns();
    }
    return m;
  }

  static void write_result(uint32_t* o, const nfsieve::Verdict& v) {
    o[0] = static_cast<uint32_t>(v.rule + 2);
    o[1] = v.verdict | static_cast<uint32_t>(v.mark_set) << 8 | static_cast<uint32_t>(v.queue) << 16;
    o[2] = v.mark;
  }

  // classify(linkType, frame, meta?) -> Uint32Array [rule+2, verdict|markSet<<8|queue<<16, mark]
  Napi::Value Classify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t lt = link_type_arg(info, 0);
    if (!is_bytes(info[1])) throw Napi::TypeError::New(env, "frame must be a Uint8Array");
    Bytes frame = bytes_of(info[1]);
    std::string keep[2];
    nfsieve::Meta m = meta_of(info[2], keep);
    Decoded d;
    nfsieve::decode_frame(lt, frame.data, frame.length, &d);
    nfsieve::Verdict v;
    classifier_->classify(d, m, &v, counters_.get());
    Napi::Uint32Array out = Napi::Uint32Array::New(env, 3);
    write_result(out.Data(), v);
    return out;
  }

  // classifyBatch(linkType, data, offsets, out: Uint32Array(3n), meta?) -> count
  Napi::Value ClassifyBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t lt = link_type_arg(info, 0);
    if (!is_bytes(info[1]) || !info[2].IsTypedArray() || !info[3].IsTypedArray())
      throw Napi::TypeError::New(env, "classifyBatch(linkType, Uint8Array, Uint32Array, Uint32Array, meta?)");
    Napi::TypedArray out_ta = info[3].As<Napi::TypedArray>();
    if (out_ta.TypedArrayType() != napi_uint32_array) throw Napi::TypeError::New(env, "offsets and out must be Uint32Arrays");
    Bytes data = bytes_of(info[1]);
    const uint32_t* offsets = nullptr;
    const size_t count = glue::frame_offsets(env, info[2], data, &offsets);
    uint32_t* out = out_ta.As<Napi::Uint32Array>().Data();
    if (out_ta.ElementLength() < count * 3) throw Napi::RangeError::New(env, "out must hold 3 entries per frame");
    std::string keep[2];
    nfsieve::Meta m = meta_of(info[4], keep);
    std::vector<Decoded> decoded(count);
    std::vector<nfsieve::Verdict> verdicts(count);
    for (size_t i = 0; i < count; i++)
      nfsieve::decode_frame(lt, data.data + offsets[i], offsets[i + 1] - offsets[i], &decoded[i]);
    classifier_->classify_batch(decoded.data(), count, &m, 0, verdicts.data(), counters_.get());
    for (size_t i = 0; i < count; i++) write_result(out + 3 * i, verdicts[i]);
    return Napi::Number::New(env, static_cast<double>(count));
  }

  // classifyTuples(tuples: Uint32Array(5n: src dst sport dport proto), out: Int32Array(n)) -> n
  // IPv4 5-tuples classified without a packet (ClassBench); out[i] = rule or -1.
  Napi::Value ClassifyTuples(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || !info[1].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, "classifyTuples(Uint32Array, Int32Array)");
    Napi::Uint32Array t = info[0].As<Napi::Uint32Array>();
    Napi::Int32Array out = info[1].As<Napi::Int32Array>();
    size_t n = t.ElementLength() / 5;
    if (out.ElementLength() < n) throw Napi::RangeError::New(env, "out must hold one entry per tuple");
    classifier_->classify_tuples(t.Data(), n, out.Data());
    return Napi::Number::New(env, static_cast<double>(n));
  }

  // counters() -> { hits: BigUint64Array, bytes: BigUint64Array } (rules + default)
  Napi::Value GetCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t n = counters_->size();
    Napi::Object o = Napi::Object::New(env);
    const nfsieve::Table& t = classifier_->table();
    std::vector<uint64_t> evictions(n, 0);
    for (uint32_t l = 0; l < t.limit_count(); l++) evictions[t.limit_rule(l)] += classifier_->limits().evictions(l);
    const char* names[4] = {"hits", "bytes", "overLimit", "evictions"};
    for (int k = 0; k < 4; k++) {
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, n * 8);
      uint64_t* dst = static_cast<uint64_t*>(ab.Data());
      for (size_t i = 0; i < n; i++)
        dst[i] = k == 0 ? counters_->hits(i) : k == 1 ? counters_->bytes(i) : k == 2 ? counters_->over_limit(i) : evictions[i];
      napi_value arr;
      napi_create_typedarray(env, napi_biguint64_array, n, ab, 0, &arr);
      o.Set(names[k], Napi::Value(env, arr));
    }
    return o;
  }

  Napi::Value ResetCounters(const Napi::CallbackInfo& info) {
    counters_->reset();
    return info.Env().Undefined();
  }

  nfsieve::NamedSet& set_arg(const Napi::CallbackInfo& info) {
    if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "set name must be a string");
    std::string name = info[0].As<Napi::String>().Utf8Value();
    nfsieve::NamedSet* s = classifier_->find_set(name);
    if (!s) throw Napi::Error::New(info.Env(), "no set named '" + name + "' in this policy");
    return *s;
  }

  nfsieve::SetElement element_of(const Napi::CallbackInfo& info, const nfsieve::NamedSet& s) {
    nfsieve::SetElement e = element_arg(info.Env(), info[1]);
    if (e.kind != s.kind)
      throw Napi::Error::New(info.Env(),
                             "set '" + s.name + "' holds " + (s.kind == nfsieve::wire::kSetKindAddress ? "addresses" : "SPIs"));
    return e;
  }

  // setAdd(name, element, timeoutMs) -> whether the element was not live before
  Napi::Value SetAdd(const Napi::CallbackInfo& info) {
    nfsieve::NamedSet& s = set_arg(info);
    nfsieve::SetElement e = element_of(info, s);
    return Napi::Boolean::New(info.Env(), s.add(e, nfsieve::kOriginLive, expiry_arg(info.Env(), info[2])));
  }

  // setRemove(name, element, origins) -> whether it had one of these origins
  Napi::Value SetRemove(const Napi::CallbackInfo& info) {
    nfsieve::NamedSet& s = set_arg(info);
    nfsieve::SetElement e = element_of(info, s);
    return Napi::Boolean::New(info.Env(), s.remove(e, origins_arg(info.Env(), info[2])));
  }

  // setFlush(name, origins) -> members that lost an origin
  Napi::Value SetFlush(const Napi::CallbackInfo& info) {
    nfsieve::NamedSet& s = set_arg(info);
    return Napi::Number::New(info.Env(), static_cast<double>(s.flush(origins_arg(info.Env(), info[1]))));
  }

  Napi::Value SetTest(const Napi::CallbackInfo& info) {
    nfsieve::NamedSet& s = set_arg(info);
    return Napi::Boolean::New(info.Env(), s.test(element_of(info, s)));
  }

  Napi::Value SetList(const Napi::CallbackInfo& info) {
    nfsieve::NamedSet& s = set_arg(info);
    std::vector<nfsieve::MemberInfo> members;
    s.list(&members, nfsieve::steady_now_ms());
    return members_js(info.Env(), members);
  }

  Napi::Value SetExpire(const Napi::CallbackInfo& info) {
    size_t n = 0;
    const int64_t now = nfsieve::steady_now_ms();
    for (nfsieve::NamedSet& s : classifier_->sets())
      if (s.timed()) n += s.expire(now);
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  Napi::Value SetInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    const int64_t now = nfsieve::steady_now_ms();
    for (const nfsieve::NamedSet& s : classifier_->sets()) out.Set(i++, summary_js(env, s.name, s.kind, s.sizes(now)));
    return out;
  }

  Napi::Value RuleCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), classifier_->table().rule_count());
  }
  Napi::Value TableBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(classifier_->table().byte_size()));
  }

  // limitStats() -> [{rule, perSource, sources, evictions, bytes}] in table order
  Napi::Value LimitStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const nfsieve::Table& t = classifier_->table();
    nfsieve::LimitState& ls = classifier_->limits();
    Napi::Array out = Napi::Array::New(env, t.limit_count());
    for (uint32_t l = 0; l < t.limit_count(); l++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("rule", t.limit_rule(l));
      o.Set("perSource", t.limit(l).per == nfsieve::kLimitPerSource);
      o.Set("sources", ls.sources(l));
      o.Set("evictions", static_cast<double>(ls.evictions(l)));
      out.Set(l, o);
    }
    return out;
  }

  // Bytes of every limit's preallocated state.
  Napi::Value LimitBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(classifier_->limits().byte_size()));
  }

  Napi::Value IndexBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(classifier_->index_bytes()));
  }

  // lookupInfo() -> [{family, structure, cutShort, covered, groupIndexes, splitGroups, wideSplits, addressFilters, treeSimd,
  // tupleKeys (IPv4)}] for IPv4 and IPv6: which structure answers the first candidate (docs/algorithm.md).
  Napi::Value LookupInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env, 2);
    for (uint32_t k = 0; k < 2; k++) {
      const int fam = k ? 6 : 4;
      const nfsieve::FamilyCuts& c = classifier_->cuts(fam);
      Napi::Object o = Napi::Object::New(env);
      o.Set("family", fam);
      o.Set("structure", classifier_->compact(fam) ? "compact" : !c.usable() ? "vector" : c.split_trees() ? "splits" : "cuts");
      o.Set("cutShort", c.usable() && c.cut_short());
      o.Set("covered", c.covered());
      o.Set("groupIndexes", c.usable() ? c.compact_groups() : 0);
      o.Set("splitGroups", c.usable() ? c.split_groups() : 0);
      o.Set("wideSplits", c.usable() ? c.wide_splits() : 0);
      o.Set("addressFilters", c.usable() ? c.address_filters() : 0);
      const bool walks = c.usable() && (c.split_trees() || c.split_groups() > 0);  // split trees to walk
      o.Set("treeSimd", !c.usable() ? "scalar" : walks && c.avx512() ? "avx512" : c.avx2() ? "avx2" : "scalar");
      if (fam == 4) o.Set("tupleKeys", classifier_->tuple_keys());
      out.Set(k, o);
    }
    return out;
  }
};

}  // namespace

Napi::Function DefineClassifier(Napi::Env env) { return ClassifierWrap::Define(env); }

}  // namespace glue
