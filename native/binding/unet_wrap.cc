#include "binding/unet_wrap.h"

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "binding/lora_methods.h"
#include "binding/named_tensors.h"
#include "binding/tensor_wrap.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

constexpr int64_t kBig = int64_t{1} << 40;

ForwardInputs parseInputs(const Napi::Value& value) {
  Napi::Object o = expectObject(value, "inputs");
  ForwardInputs in;
  in.sample = TensorWrap::unwrapArg(o.Get("sample"), "inputs.sample");
  in.timestep = TensorWrap::unwrapArg(o.Get("timestep"), "inputs.timestep");
  Napi::Value ctx = o.Get("encoderHiddenStates");
  if (!ctx.IsUndefined() && !ctx.IsNull()) in.context = TensorWrap::unwrapArg(ctx, "inputs.encoderHiddenStates");
  Napi::Value labels = o.Get("classLabels");
  if (!labels.IsUndefined() && !labels.IsNull()) in.classLabels = TensorWrap::unwrapArg(labels, "inputs.classLabels");
  return in;
}

}  // namespace

Napi::Function UNetWrap::define(Napi::Env env) {
  return defineModel(env, {
                              InstanceMethod<&UNetWrap::setTraining>("setTraining"),
                              InstanceMethod<&UNetWrap::setOptions>("setOptions"),
                              InstanceMethod<&UNetWrap::addLora>("addLora"),
                              InstanceMethod<&UNetWrap::setLora>("setLora"),
                              InstanceMethod<&UNetWrap::loraEntries>("loraEntries"),
                              InstanceMethod<&UNetWrap::mergeLora>("mergeLora"),
                              InstanceMethod<&UNetWrap::removeLora>("removeLora"),
                              InstanceMethod<&UNetWrap::forward>("forward"),
                              InstanceMethod<&UNetWrap::forwardBackwardMse>("forwardBackwardMse"),
                          });
}

UNetConfig UNetWrap::parseConfig(const Napi::Object& o) {
  const std::string p = "config";
  UNetConfig c;
  c.conditional = fieldBool(o, "conditional", p);
  c.inChannels = fieldInt(o, "inChannels", p, 1, kBig);
  c.outChannels = fieldInt(o, "outChannels", p, 1, kBig);
  c.centerInputSample = fieldBool(o, "centerInputSample", p);
  c.timeEmbeddingType = fieldString(o, "timeEmbeddingType", p);
  c.flipSinToCos = fieldBool(o, "flipSinToCos", p);
  c.freqShift = fieldNumber(o, "freqShift", p);
  c.downBlockTypes = fieldStringList(o, "downBlockTypes", p);
  c.upBlockTypes = fieldStringList(o, "upBlockTypes", p);
  c.midBlockType = fieldString(o, "midBlockType", p);
  c.blockOutChannels = fieldIntList(o, "blockOutChannels", p, 1, kBig);
  c.layersPerBlock = fieldIntList(o, "layersPerBlock", p, 1, 1024);
  c.downTransformerLayers = fieldIntList(o, "downTransformerLayers", p, 1, 1024);
  c.midTransformerLayers = fieldInt(o, "midTransformerLayers", p, 1, 1024);
  c.upTransformerLayers = fieldIntList(o, "upTransformerLayers", p, 1, 1024);
  c.midBlockScaleFactor = fieldNumber(o, "midBlockScaleFactor", p);
  c.downsamplePadding = fieldInt(o, "downsamplePadding", p, 0, 16);
  c.dropout = fieldNumber(o, "dropout", p);
  c.actFn = fieldString(o, "actFn", p);
  c.attentionHeadDim = fieldIntList(o, "attentionHeadDim", p, -1, kBig);
  c.numAttentionHeads = fieldIntList(o, "numAttentionHeads", p, -1, kBig);
  c.crossAttentionDim = fieldIntList(o, "crossAttentionDim", p, -1, kBig);
  c.onlyCrossAttention = fieldBoolList(o, "onlyCrossAttention", p);
  c.normNumGroups = fieldInt(o, "normNumGroups", p, -1, kBig);
  c.attnNormNumGroups = fieldInt(o, "attnNormNumGroups", p, -1, kBig);
  c.normEps = fieldNumber(o, "normEps", p);
  c.resnetTimeScaleShift = fieldString(o, "resnetTimeScaleShift", p);
  c.addAttention = fieldBool(o, "addAttention", p);
  c.classEmbedType = fieldString(o, "classEmbedType", p);
  c.numClassEmbeds = fieldInt(o, "numClassEmbeds", p, -1, kBig);
  c.useLinearProjection = fieldBool(o, "useLinearProjection", p);
  c.upcastAttention = fieldBool(o, "upcastAttention", p);
  c.convInKernel = fieldInt(o, "convInKernel", p, 1, 15);
  c.convOutKernel = fieldInt(o, "convOutKernel", p, 1, 15);
  c.timeEmbeddingDim = fieldInt(o, "timeEmbeddingDim", p, -1, kBig);
  c.timestepPostAct = fieldString(o, "timestepPostAct", p);
  c.timeEmbeddingActFn = fieldString(o, "timeEmbeddingActFn", p);
  return c;
}

std::shared_ptr<UNetModel> UNetWrap::modelArg(const Napi::Value& value, const std::string& param) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addonState(env).unetConstructor.Value())) failArg("a UNet", param, value);
  return Unwrap(value.As<Napi::Object>())->live();
}

Napi::Value UNetWrap::setTraining(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    bool on = expectBool(argAt(info, 0), "training");
    return addonState(env).compute->runVoid(env, [model, on] { model->setTraining(on); });
  });
}

Napi::Value UNetWrap::setOptions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Napi::Object o = expectObject(argAt(info, 0), "options");
    UNetRuntimeOptions opts;
    opts.gradientCheckpointing = fieldBool(o, "gradientCheckpointing", "options");
    opts.channelsLast = fieldBool(o, "channelsLast", "options");
    Napi::Value autocast = o.Get("autocast");
    if (!autocast.IsNull() && !autocast.IsUndefined()) {
      opts.autocast = true;
      opts.autocastDtype = expectDType(autocast, "options.autocast");
    }
    return addonState(env).compute->runVoid(env, [model, opts] { model->setOptions(opts); });
  });
}

Napi::Value UNetWrap::addLora(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return addLoraMethod(info, live()); });
}

Napi::Value UNetWrap::setLora(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return setLoraMethod(info, live()); });
}

Napi::Value UNetWrap::loraEntries(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return loraEntriesMethod(info, live()); });
}

Napi::Value UNetWrap::mergeLora(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return mergeLoraMethod(info, live()); });
}

Napi::Value UNetWrap::removeLora(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return removeLoraMethod(info, live()); });
}

Napi::Value UNetWrap::forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    ForwardInputs in = parseInputs(argAt(info, 0));
    return addonState(env).compute->run(
        env, [model, in] { return model->forward(in); },
        [](Napi::Env env, Tensor& out) -> Napi::Value { return TensorWrap::create(env, out); });
  });
}

Napi::Value UNetWrap::forwardBackwardMse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    ForwardInputs in = parseInputs(argAt(info, 0));
    Tensor target = TensorWrap::unwrapArg(argAt(info, 1), "target");
    Napi::Value namesArg = argAt(info, 2);
    std::vector<std::string> names = namesArg.IsUndefined() ? std::vector<std::string>{} : expectStringArray(namesArg, "gradNames");
    return addonState(env).compute->run(
        env, [model, in, target, names] { return model->forwardBackwardMse(in, target, names); },
        [](Napi::Env env, BackwardResult& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("output", TensorWrap::create(env, r.output));
          o.Set("loss", TensorWrap::create(env, r.loss));
          o.Set("gradSample", TensorWrap::create(env, r.gradSample));
          if (r.gradContext.defined()) o.Set("gradEncoderHiddenStates", TensorWrap::create(env, r.gradContext));
          o.Set("gradParams", namedTensorsToJs(env, r.gradParams));
          return o;
        });
  });
}

}  // namespace difftune
