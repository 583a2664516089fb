#include "binding/vae_wrap.h"

#include <cmath>

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "binding/model_values.h"
#include "binding/named_tensors.h"
#include "binding/tensor_wrap.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

constexpr int64_t kBig = int64_t{1} << 40;

VaeConfig parseConfig(const Napi::Object& o) {
  const std::string p = "config";
  VaeConfig c;
  c.inChannels = fieldInt(o, "inChannels", p, 1, kBig);
  c.outChannels = fieldInt(o, "outChannels", p, 1, kBig);
  c.latentChannels = fieldInt(o, "latentChannels", p, 1, kBig);
  c.downBlockTypes = fieldStringList(o, "downBlockTypes", p);
  c.upBlockTypes = fieldStringList(o, "upBlockTypes", p);
  c.blockOutChannels = fieldIntList(o, "blockOutChannels", p, 1, kBig);
  if (c.blockOutChannels.empty() || c.blockOutChannels.size() > 16)
    throw InvalidArgument("Expected 1 to 16 entries for config.blockOutChannels but received " + std::to_string(c.blockOutChannels.size()));
  c.layersPerBlock = fieldInt(o, "layersPerBlock", p, 1, 1024);
  c.actFn = fieldString(o, "actFn", p);
  c.normNumGroups = fieldInt(o, "normNumGroups", p, 1, kBig);
  c.midBlockAddAttention = fieldBool(o, "midBlockAddAttention", p);
  c.useQuantConv = fieldBool(o, "useQuantConv", p);
  c.usePostQuantConv = fieldBool(o, "usePostQuantConv", p);
  return c;
}

Napi::Value tensorValue(Napi::Env env, Tensor& t) { return TensorWrap::create(env, t); }

}  // namespace

Napi::Function VaeWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeAutoencoderKL",
                     {
                         StaticMethod<&VaeWrap::create>("create"),
                         InstanceMethod<&VaeWrap::parameters>("parameters"),
                         InstanceMethod<&VaeWrap::loadStateDict>("loadStateDict"),
                         InstanceMethod<&VaeWrap::stateDict>("stateDict"),
                         InstanceMethod<&VaeWrap::to>("to"),
                         InstanceMethod<&VaeWrap::initialize>("initialize"),
                         InstanceMethod<&VaeWrap::encode>("encode"),
                         InstanceMethod<&VaeWrap::decode>("decode"),
                         InstanceMethod<&VaeWrap::forward>("forward"),
                         InstanceMethod<&VaeWrap::sample>("sample"),
                         InstanceMethod<&VaeWrap::decodeBackwardMse>("decodeBackwardMse"),
                         InstanceMethod<&VaeWrap::dispose>("dispose"),
                         InstanceAccessor<&VaeWrap::disposed>("disposed"),
                     });
}

VaeWrap::VaeWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VaeWrap>(info) {
  boundary(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw InvalidArgument("NativeAutoencoderKL cannot be constructed directly; use NativeAutoencoderKL.create(config)");
    model_ = *info[0].As<Napi::External<std::shared_ptr<VaeModel>>>().Data();
    return 0;
  });
}

std::shared_ptr<VaeModel> VaeWrap::live() const {
  if (!model_) throw Disposed("AutoencoderKL was used after dispose()");
  return model_;
}

Napi::Value VaeWrap::create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    VaeConfig config = parseConfig(expectObject(argAt(info, 0), "config"));
    return addonState(env).compute->run(
        env, [config] { return std::make_shared<VaeModel>(config); },
        [](Napi::Env env, std::shared_ptr<VaeModel>& model) -> Napi::Value {
          auto ext = Napi::External<std::shared_ptr<VaeModel>>::New(env, &model);
          return addonState(env).vaeConstructor.New({ext});
        });
  });
}

Napi::Value VaeWrap::parameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    return addonState(env).compute->run(
        env, [model] { return model->parameters(); },
        [](Napi::Env env, std::vector<ParameterInfo>& params) -> Napi::Value { return parameterInfosToJs(env, params); });
  });
}

Napi::Value VaeWrap::loadStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    NamedTensors weights = namedTensorsFromJs(argAt(info, 0), argAt(info, 1), "weights");
    std::string source = expectString(argAt(info, 2), "source");
    return addonState(env).compute->runVoid(env, [model, weights, source] { model->loadStateDict(weights, source); });
  });
}

Napi::Value VaeWrap::stateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    return addonState(env).compute->run(
        env, [model] { return model->stateDict(); },
        [](Napi::Env env, NamedTensors& tensors) -> Napi::Value { return namedTensorsToJs(env, tensors); });
  });
}

Napi::Value VaeWrap::to(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    std::string device = expectString(argAt(info, 0), "device");
    std::string problem = checkDevice(device);
    if (!problem.empty()) throw InvalidArgument(problem);
    DType dtype = expectDType(argAt(info, 1), "dtype");
    return addonState(env).compute->runVoid(env, [model, device, dtype] { model->to(device, dtype); });
  });
}

Napi::Value VaeWrap::initialize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    uint64_t seed = static_cast<uint64_t>(expectInt(argAt(info, 0), "seed", 0, (int64_t{1} << 53) - 1));
    return addonState(env).compute->runVoid(env, [model, seed] { model->initialize(seed); });
  });
}

Napi::Value VaeWrap::encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor images = TensorWrap::unwrapArg(argAt(info, 0), "images");
    return addonState(env).compute->run(
        env, [model, images] { return model->encode(images); },
        [](Napi::Env env, VaeEncoding& e) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("mean", TensorWrap::create(env, e.mean));
          o.Set("logvar", TensorWrap::create(env, e.logvar));
          o.Set("std", TensorWrap::create(env, e.std));
          return o;
        });
  });
}

Napi::Value VaeWrap::decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor latents = TensorWrap::unwrapArg(argAt(info, 0), "latents");
    return addonState(env).compute->run(env, [model, latents] { return model->decode(latents); }, tensorValue);
  });
}

Napi::Value VaeWrap::forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor images = TensorWrap::unwrapArg(argAt(info, 0), "images");
    return addonState(env).compute->run(env, [model, images] { return model->forward(images); }, tensorValue);
  });
}

Napi::Value VaeWrap::sample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor mean = TensorWrap::unwrapArg(argAt(info, 0), "mean");
    Tensor logvar = TensorWrap::unwrapArg(argAt(info, 1), "logvar");
    Tensor noise = TensorWrap::unwrapArg(argAt(info, 2), "noise");
    Napi::Value f = argAt(info, 3);
    if (!f.IsNumber() || !std::isfinite(f.As<Napi::Number>().DoubleValue())) failArg("a finite number", "factor", f);
    double factor = f.As<Napi::Number>().DoubleValue();
    return addonState(env).compute->run(
        env, [model, mean, logvar, noise, factor] { return model->sample(mean, logvar, noise, factor); }, tensorValue);
  });
}

Napi::Value VaeWrap::decodeBackwardMse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor latents = TensorWrap::unwrapArg(argAt(info, 0), "latents");
    Tensor target = TensorWrap::unwrapArg(argAt(info, 1), "target");
    Napi::Value namesArg = argAt(info, 2);
    std::vector<std::string> names = namesArg.IsUndefined() ? std::vector<std::string>{} : expectStringArray(namesArg, "gradNames");
    return addonState(env).compute->run(
        env, [model, latents, target, names] { return model->decodeBackwardMse(latents, target, names); },
        [](Napi::Env env, VaeBackwardResult& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("output", TensorWrap::create(env, r.output));
          o.Set("loss", TensorWrap::create(env, r.loss));
          o.Set("gradLatents", TensorWrap::create(env, r.gradLatents));
          o.Set("gradParams", namedTensorsToJs(env, r.gradParams));
          return o;
        });
  });
}

Napi::Value VaeWrap::dispose(const Napi::CallbackInfo& info) {
  model_.reset();
  return info.Env().Undefined();
}

Napi::Value VaeWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

}  // namespace difftune
