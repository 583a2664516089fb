#include "binding/clip_text_wrap.h"

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

Tensor optionalTensor(const Napi::Value& v, const std::string& param) {
  return v.IsUndefined() || v.IsNull() ? Tensor() : TensorWrap::unwrapArg(v, param);
}

}  // namespace

Napi::Function ClipTextWrap::define(Napi::Env env) {
  return defineModel(env, {
                              InstanceMethod<&ClipTextWrap::encode>("encode"),
                              InstanceMethod<&ClipTextWrap::forwardBackwardMse>("forwardBackwardMse"),
                              InstanceMethod<&ClipTextWrap::addLora>("addLora"),
                              InstanceMethod<&ClipTextWrap::setLora>("setLora"),
                              InstanceMethod<&ClipTextWrap::loraEntries>("loraEntries"),
                              InstanceMethod<&ClipTextWrap::mergeLora>("mergeLora"),
                              InstanceMethod<&ClipTextWrap::removeLora>("removeLora"),
                              InstanceMethod<&ClipTextWrap::appendTokenEmbeddings>("appendTokenEmbeddings"),
                              InstanceMethod<&ClipTextWrap::setOptions>("setOptions"),
                          });
}

std::shared_ptr<ClipTextModel> ClipTextWrap::modelArg(const Napi::Value& value, const std::string& param) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addonState(env).clipTextConstructor.Value()))
    failArg("a CLIPTextModel", param, value);
  return Unwrap(value.As<Napi::Object>())->live();
}

ClipTextConfig ClipTextWrap::parseConfig(const Napi::Object& o) {
  const std::string p = "config";
  ClipTextConfig c;
  c.vocabSize = fieldInt(o, "vocabSize", p, 1, kBig);
  c.hiddenSize = fieldInt(o, "hiddenSize", p, 1, kBig);
  c.intermediateSize = fieldInt(o, "intermediateSize", p, 1, kBig);
  c.numHiddenLayers = fieldInt(o, "numHiddenLayers", p, 1, 4096);
  c.numAttentionHeads = fieldInt(o, "numAttentionHeads", p, 1, kBig);
  c.maxPositionEmbeddings = fieldInt(o, "maxPositionEmbeddings", p, 1, kBig);
  c.hiddenAct = fieldString(o, "hiddenAct", p);
  c.layerNormEps = fieldNumber(o, "layerNormEps", p);
  if (!(c.layerNormEps > 0)) throw InvalidArgument("Expected a positive number for config.layerNormEps");
  c.eosTokenId = fieldInt(o, "eosTokenId", p, -kBig, kBig);
  return c;
}

Napi::Value ClipTextWrap::encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor ids = TensorWrap::unwrapArg(argAt(info, 0), "inputIds");
    Napi::Object o = expectObject(argAt(info, 1), "options");
    Tensor mask = optionalTensor(o.Get("attentionMask"), "options.attentionMask");
    TextEncodeOptions opts;
    opts.clipSkip = fieldInt(o, "clipSkip", "options", 0, 4096);
    opts.outputHiddenStates = fieldBool(o, "outputHiddenStates", "options");
    return addonState(env).compute->run(
        env, [model, ids, mask, opts] { return model->encode(ids, mask, opts); },
        [](Napi::Env env, TextEncoderOutput& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("lastHiddenState", TensorWrap::create(env, r.lastHiddenState));
          out.Set("pooledOutput", TensorWrap::create(env, r.pooledOutput));
          out.Set("promptEmbeds", TensorWrap::create(env, r.promptEmbeds));
          if (!r.hiddenStates.empty()) {
            Napi::Array hs = Napi::Array::New(env, r.hiddenStates.size());
            for (size_t i = 0; i < r.hiddenStates.size(); ++i) hs.Set(static_cast<uint32_t>(i), TensorWrap::create(env, r.hiddenStates[i]));
            out.Set("hiddenStates", hs);
          }
          return out;
        });
  });
}

Napi::Value ClipTextWrap::forwardBackwardMse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor ids = TensorWrap::unwrapArg(argAt(info, 0), "inputIds");
    Tensor target = TensorWrap::unwrapArg(argAt(info, 1), "target");
    Tensor mask = optionalTensor(argAt(info, 2), "attentionMask");
    Napi::Value namesArg = argAt(info, 3);
    std::vector<std::string> names = namesArg.IsUndefined() ? std::vector<std::string>{} : expectStringArray(namesArg, "gradNames");
    return addonState(env).compute->run(
        env, [model, ids, mask, target, names] { return model->forwardBackwardMse(ids, mask, target, names); },
        [](Napi::Env env, TextEncoderBackwardResult& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("output", TensorWrap::create(env, r.output));
          o.Set("loss", TensorWrap::create(env, r.loss));
          o.Set("gradParams", namedTensorsToJs(env, r.gradParams));
          return o;
        });
  });
}

Napi::Value ClipTextWrap::addLora(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return addLoraMethod(info, live()); });
}

Napi::Value ClipTextWrap::setLora(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return setLoraMethod(info, live()); });
}

Napi::Value ClipTextWrap::loraEntries(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return loraEntriesMethod(info, live()); });
}

Napi::Value ClipTextWrap::mergeLora(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return mergeLoraMethod(info, live()); });
}

Napi::Value ClipTextWrap::removeLora(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return removeLoraMethod(info, live()); });
}

Napi::Value ClipTextWrap::appendTokenEmbeddings(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Tensor rows = TensorWrap::unwrapArg(argAt(info, 0), "rows");
    return addonState(env).compute->run(
        env, [model, rows] { return model->appendTokenEmbeddings(rows); },
        [](Napi::Env env, int64_t& first) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(first)); });
  });
}

// { gradientCheckpointing }: what training through the trainer may change.
Napi::Value ClipTextWrap::setOptions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    Napi::Object o = expectObject(argAt(info, 0), "options");
    bool checkpointing = fieldBool(o, "gradientCheckpointing", "options");
    return addonState(env).compute->runVoid(env, [model, checkpointing] { model->setGradientCheckpointing(checkpointing); });
  });
}

}  // namespace difftune
