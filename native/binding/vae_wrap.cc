#include "binding/vae_wrap.h"

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "binding/named_tensors.h"
#include "binding/tensor_wrap.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

constexpr int64_t kBig = int64_t{1} << 40;

Napi::Value tensorValue(Napi::Env env, Tensor& t) { return TensorWrap::create(env, t); }

// encode/decode's optional { slicing, tiling, tileSampleSize, tileLatentSize, overlap }; absent: neither.
VaeTiling parseTiling(const Napi::Value& value) {
  VaeTiling t;
  if (value.IsUndefined()) return t;
  Napi::Object o = expectObject(value, "options");
  t.slicing = fieldBool(o, "slicing", "options");
  t.tiling = fieldBool(o, "tiling", "options");
  if (!t.tiling) return t;
  t.tileSampleSize = fieldInt(o, "tileSampleSize", "options", 1, kBig);
  t.tileLatentSize = fieldInt(o, "tileLatentSize", "options", 1, kBig);
  t.overlap = fieldNumber(o, "overlap", "options");
  if (!(t.overlap >= 0 && t.overlap < 1)) failArg("a number in [0, 1)", "options.overlap", o.Get("overlap"));
  return t;
}

}  // namespace

Napi::Function VaeWrap::define(Napi::Env env) {
  return defineModel(env, {
                              InstanceMethod<&VaeWrap::encode>("encode"),
                              InstanceMethod<&VaeWrap::decode>("decode"),
                              InstanceMethod<&VaeWrap::forward>("forward"),
                              InstanceMethod<&VaeWrap::decodeBackwardMse>("decodeBackwardMse"),
                          });
}

std::shared_ptr<VaeModel> VaeWrap::modelArg(const Napi::Value& value, const std::string& param) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addonState(env).vaeConstructor.Value()))
    failArg("an AutoencoderKL", param, value);
  return Unwrap(value.As<Napi::Object>())->live();
}

VaeConfig VaeWrap::parseConfig(const Napi::Object& o) {
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

Napi::Value VaeWrap::encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor images = TensorWrap::unwrapArg(argAt(info, 0), "images");
    VaeTiling tiling = parseTiling(argAt(info, 1));
    return addonState(env).compute->run(
        env, [model, images, tiling] { return model->encode(images, tiling); },
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
    VaeTiling tiling = parseTiling(argAt(info, 1));
    return addonState(env).compute->run(
        env, [model, latents, tiling] { return model->decode(latents, tiling); }, tensorValue);
  });
}

Napi::Value VaeWrap::forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor images = TensorWrap::unwrapArg(argAt(info, 0), "images");
    return addonState(env).compute->run(
        env, [model, images] { return model->forward(images); }, tensorValue);
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

}  // namespace difftune
