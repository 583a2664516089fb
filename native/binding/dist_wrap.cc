#include "binding/dist_wrap.h"

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

// Marks NativeProcessGroup objects, so that an argument can be checked without a stored constructor.
constexpr napi_type_tag kGroupTag = {0x64696666'74756e65ULL, 0x70726f63'67727570ULL};

ProcessGroupOptions parseOptions(const Napi::Object& o) {
  const std::string p = "options";
  ProcessGroupOptions g;
  g.rank = static_cast<int>(fieldInt(o, "rank", p, 0, 1 << 20));
  g.worldSize = static_cast<int>(fieldInt(o, "worldSize", p, 1, 1 << 20));
  g.masterAddr = fieldString(o, "masterAddr", p);
  g.masterPort = static_cast<int>(fieldInt(o, "masterPort", p, 1, 65535));
  g.timeoutMs = fieldInt(o, "timeoutMs", p, 1, int64_t{1} << 40);
  if (!o.Get("backend").IsUndefined()) g.backend = fieldString(o, "backend", p);
  if (!o.Get("device").IsUndefined()) g.device = fieldString(o, "device", p);
  if (!o.Get("bucketBytes").IsUndefined()) g.bucketBytes = fieldInt(o, "bucketBytes", p, 1, int64_t{1} << 40);
  if (g.rank >= g.worldSize)
    throw InvalidArgument("Expected options.rank in [0, " + std::to_string(g.worldSize) + ") but received " + std::to_string(g.rank));
  return g;
}

Napi::Value capabilitiesJs(const Napi::CallbackInfo& info) {
  DistCapabilities c = distCapabilities();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("gloo", c.gloo);
  o.Set("nccl", c.nccl);
  return o;
}

}  // namespace

Napi::Function DistWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeProcessGroup",
                     {
                         InstanceMethod<&DistWrap::connect>("connect"),
                         InstanceMethod<&DistWrap::allreduceSum>("allreduceSum"),
                         InstanceMethod<&DistWrap::barrier>("barrier"),
                         InstanceMethod<&DistWrap::shutdown>("shutdown"),
                         InstanceMethod<&DistWrap::counters>("counters"),
                         InstanceMethod<&DistWrap::backend>("backend"),
                         InstanceMethod<&DistWrap::dispose>("dispose"),
                         InstanceAccessor<&DistWrap::disposed>("disposed"),
                     });
}

void registerDist(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeProcessGroup", DistWrap::define(env));
  exports.Set("distCapabilities", Napi::Function::New<capabilitiesJs>(env, "distCapabilities"));
}

DistWrap::DistWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DistWrap>(info) {
  boundary(info.Env(), [&] {
    group_ = std::make_shared<ProcessGroup>(parseOptions(expectObject(argAt(info, 0), "options")));
    info.This().As<Napi::Object>().TypeTag(&kGroupTag);
    return 0;
  });
}

std::shared_ptr<ProcessGroup> DistWrap::groupArg(const Napi::Value& value, const std::string& param) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kGroupTag)) failArg("a NativeProcessGroup", param, value);
  return Unwrap(value.As<Napi::Object>())->live();
}

std::shared_ptr<ProcessGroup> DistWrap::live() const {
  if (!group_) throw Disposed("ProcessGroup was used after dispose()");
  return group_;
}

Napi::Value DistWrap::connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto group = live();
    return addonState(env).compute->runVoid(env, [group] { group->connect(); });
  });
}

Napi::Value DistWrap::allreduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto group = live();
    Napi::Value arg = argAt(info, 0);
    if (!arg.IsArray()) failArg("an array of numbers", "values", arg);
    Napi::Array arr = arg.As<Napi::Array>();
    std::vector<double> values;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr.Get(i);
      if (!v.IsNumber()) failArg("a number", "values[" + std::to_string(i) + "]", v);
      values.push_back(v.As<Napi::Number>().DoubleValue());
    }
    return addonState(env).compute->run(
        env, [group, values] { return group->allreduceSum(values); },
        [](Napi::Env env, std::vector<double>& sums) -> Napi::Value {
          Napi::Array out = Napi::Array::New(env, sums.size());
          for (uint32_t i = 0; i < sums.size(); ++i) out.Set(i, sums[i]);
          return out;
        });
  });
}

Napi::Value DistWrap::barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto group = live();
    return addonState(env).compute->runVoid(env, [group] { group->barrier(); });
  });
}

Napi::Value DistWrap::shutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto group = live();
    return addonState(env).compute->runVoid(env, [group] { group->shutdown(); });
  });
}

Napi::Value DistWrap::counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto group = live();
    return addonState(env).compute->run(
        env, [group] { return group->counters(); },
        [](Napi::Env env, ProcessGroupCounters& c) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("gradientElements", static_cast<double>(c.gradientElements));
          o.Set("gradientAllreduces", static_cast<double>(c.gradientAllreduces));
          o.Set("broadcastElements", static_cast<double>(c.broadcastElements));
          o.Set("scalarAllreduces", static_cast<double>(c.scalarAllreduces));
          return o;
        });
  });
}

Napi::Value DistWrap::backend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto group = live();
    return addonState(env).compute->run(
        env, [group] { return group->backendName(); },
        [](Napi::Env env, std::string& name) -> Napi::Value { return Napi::String::New(env, name); });
  });
}

Napi::Value DistWrap::dispose(const Napi::CallbackInfo& info) {
  // Jobs in flight hold their own reference: the group leaves when the last one is done.
  group_.reset();
  return info.Env().Undefined();
}

Napi::Value DistWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !group_); }

}  // namespace difftune
