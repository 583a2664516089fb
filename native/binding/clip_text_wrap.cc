#include "binding/clip_text_wrap.h"

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

ClipTextConfig parseConfig(const Napi::Object& o) {
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

Tensor optionalTensor(const Napi::Value& v, const std::string& param) {
  return v.IsUndefined() || v.IsNull() ? Tensor() : TensorWrap::unwrapArg(v, param);
}

}  // namespace

Napi::Function ClipTextWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeCLIPTextModel",
                     {
                         StaticMethod<&ClipTextWrap::create>("create"),
                         InstanceMethod<&ClipTextWrap::parameters>("parameters"),
                         InstanceMethod<&ClipTextWrap::loadStateDict>("loadStateDict"),
                         InstanceMethod<&ClipTextWrap::stateDict>("stateDict"),
                         InstanceMethod<&ClipTextWrap::to>("to"),
                         InstanceMethod<&ClipTextWrap::initialize>("initialize"),
                         InstanceMethod<&ClipTextWrap::encode>("encode"),
                         InstanceMethod<&ClipTextWrap::forwardBackwardMse>("forwardBackwardMse"),
                         InstanceMethod<&ClipTextWrap::dispose>("dispose"),
                         InstanceAccessor<&ClipTextWrap::disposed>("disposed"),
                     });
}

ClipTextWrap::ClipTextWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ClipTextWrap>(info) {
  boundary(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw InvalidArgument("NativeCLIPTextModel cannot be constructed directly; use NativeCLIPTextModel.create(config)");
    model_ = *info[0].As<Napi::External<std::shared_ptr<ClipTextModel>>>().Data();
    return 0;
  });
}

std::shared_ptr<ClipTextModel> ClipTextWrap::live() const {
  if (!model_) throw Disposed("CLIPTextModel was used after dispose()");
  return model_;
}

Napi::Value ClipTextWrap::create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    ClipTextConfig config = parseConfig(expectObject(argAt(info, 0), "config"));
    return addonState(env).compute->run(
        env, [config] { return std::make_shared<ClipTextModel>(config); },
        [](Napi::Env env, std::shared_ptr<ClipTextModel>& model) -> Napi::Value {
          auto ext = Napi::External<std::shared_ptr<ClipTextModel>>::New(env, &model);
          return addonState(env).clipTextConstructor.New({ext});
        });
  });
}

Napi::Value ClipTextWrap::parameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    return addonState(env).compute->run(
        env, [model] { return model->parameters(); },
        [](Napi::Env env, std::vector<ParameterInfo>& params) -> Napi::Value { return parameterInfosToJs(env, params); });
  });
}

Napi::Value ClipTextWrap::loadStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    NamedTensors weights = namedTensorsFromJs(argAt(info, 0), argAt(info, 1), "weights");
    std::string source = expectString(argAt(info, 2), "source");
    return addonState(env).compute->runVoid(env, [model, weights, source] { model->loadStateDict(weights, source); });
  });
}

Napi::Value ClipTextWrap::stateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    return addonState(env).compute->run(
        env, [model] { return model->stateDict(); },
        [](Napi::Env env, NamedTensors& tensors) -> Napi::Value { return namedTensorsToJs(env, tensors); });
  });
}

Napi::Value ClipTextWrap::to(const Napi::CallbackInfo& info) {
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

Napi::Value ClipTextWrap::initialize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    uint64_t seed = static_cast<uint64_t>(expectInt(argAt(info, 0), "seed", 0, (int64_t{1} << 53) - 1));
    return addonState(env).compute->runVoid(env, [model, seed] { model->initialize(seed); });
  });
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

Napi::Value ClipTextWrap::dispose(const Napi::CallbackInfo& info) {
  model_.reset();
  return info.Env().Undefined();
}

Napi::Value ClipTextWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

}  // namespace difftune
