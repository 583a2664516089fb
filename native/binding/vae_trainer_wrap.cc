#include "binding/vae_trainer_wrap.h"

#include <cmath>

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "binding/named_tensors.h"
#include "binding/tensor_wrap.h"
#include "binding/vae_wrap.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

constexpr int64_t kMaxSafe = (int64_t{1} << 53) - 1;

double optionalNumber(const Napi::Object& o, const std::string& key, double fallback) {
  return o.Get(key).IsUndefined() ? fallback : fieldNumber(o, key, "config");
}

VaeTrainerConfig parseConfig(const Napi::Object& o) {
  VaeTrainerConfig c;
  c.reconstructionLoss = fieldString(o, "reconstructionLoss", "config");
  c.klWeight = fieldNumber(o, "klWeight", "config");
  c.beta1 = optionalNumber(o, "beta1", c.beta1);
  c.beta2 = optionalNumber(o, "beta2", c.beta2);
  c.eps = optionalNumber(o, "eps", c.eps);
  c.weightDecay = optionalNumber(o, "weightDecay", c.weightDecay);
  c.maxGradNorm = optionalNumber(o, "maxGradNorm", c.maxGradNorm);
  c.seed = static_cast<uint64_t>(fieldInt(o, "seed", "config", 0, kMaxSafe));
  return c;
}

VaeBatch parseBatch(const Napi::Value& value) {
  Napi::Object o = expectObject(value, "batch");
  VaeBatch b;
  b.images = TensorWrap::unwrapArg(o.Get("images"), "batch.images");
  b.sampleIndices = fieldIntList(o, "sampleIndices", "batch", 0, kMaxSafe);
  b.step = fieldInt(o, "step", "batch", 0, kMaxSafe);
  return b;
}

void setLoss(Napi::Object& out, const VaeLossParts& p) {
  out.Set("loss", p.loss);
  out.Set("reconstruction", p.reconstruction);
  out.Set("kl", p.kl);
  out.Set("finite", p.finite);
}

}  // namespace

Napi::Function VaeTrainerWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeVaeTrainer",
                     {
                         StaticMethod<&VaeTrainerWrap::create>("create"),
                         InstanceMethod<&VaeTrainerWrap::step>("step"),
                         InstanceMethod<&VaeTrainerWrap::gradients>("gradients"),
                         InstanceMethod<&VaeTrainerWrap::evaluate>("evaluate"),
                         InstanceMethod<&VaeTrainerWrap::optimizerSteps>("optimizerSteps"),
                         InstanceMethod<&VaeTrainerWrap::dispose>("dispose"),
                         InstanceAccessor<&VaeTrainerWrap::disposed>("disposed"),
                     });
}

VaeTrainerWrap::VaeTrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VaeTrainerWrap>(info) {
  boundary(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw InvalidArgument("NativeVaeTrainer cannot be constructed directly; use NativeVaeTrainer.create(vae, config)");
    trainer_ = *info[0].As<Napi::External<std::shared_ptr<VaeTrainer>>>().Data();
    return 0;
  });
}

std::shared_ptr<VaeTrainer> VaeTrainerWrap::live() const {
  if (!trainer_) throw Disposed("VaeTrainer was used after dispose()");
  return trainer_;
}

Napi::Value VaeTrainerWrap::create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = VaeWrap::modelArg(argAt(info, 0), "vae");
    VaeTrainerConfig config = parseConfig(expectObject(argAt(info, 1), "config"));
    return addonState(env).compute->run(
        env, [model, config] { return std::make_shared<VaeTrainer>(model, config); },
        [](Napi::Env env, std::shared_ptr<VaeTrainer>& trainer) -> Napi::Value {
          auto ext = Napi::External<std::shared_ptr<VaeTrainer>>::New(env, &trainer);
          return addonState(env).vaeTrainerConstructor.New({ext});
        });
  });
}

Napi::Value VaeTrainerWrap::step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    VaeBatch batch = parseBatch(argAt(info, 0));
    Napi::Value lrArg = argAt(info, 1);
    double lr = lrArg.IsNumber() ? lrArg.As<Napi::Number>().DoubleValue() : -1;
    if (!(lr >= 0) || !std::isfinite(lr)) failArg("a finite non-negative learning rate", "lr", lrArg);
    return addonState(env).compute->run(
        env, [trainer, batch, lr] { return trainer->step(batch, lr); },
        [](Napi::Env env, VaeStepResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          setLoss(out, r.loss);
          out.Set("gradNorm", r.gradNorm);
          out.Set("skipped", r.skipped);
          out.Set("optimizerSteps", static_cast<double>(r.optimizerSteps));
          return out;
        });
  });
}

Napi::Value VaeTrainerWrap::gradients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    VaeBatch batch = parseBatch(argAt(info, 0));
    return addonState(env).compute->run(
        env, [trainer, batch] { return trainer->gradients(batch); },
        [](Napi::Env env, VaeGradients& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          setLoss(out, r.loss);
          out.Set("gradParams", namedTensorsToJs(env, r.gradParams));
          return out;
        });
  });
}

Napi::Value VaeTrainerWrap::evaluate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    VaeBatch batch = parseBatch(argAt(info, 0));
    return addonState(env).compute->run(
        env, [trainer, batch] { return trainer->evaluate(batch); },
        [](Napi::Env env, VaeEvaluation& e) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("reconstructionSum", e.reconstructionSum);
          out.Set("klSum", e.klSum);
          out.Set("latentSum", e.latentSum);
          out.Set("latentSquareSum", e.latentSquareSum);
          out.Set("images", static_cast<double>(e.images));
          out.Set("pixelElements", static_cast<double>(e.pixelElements));
          out.Set("latentElements", static_cast<double>(e.latentElements));
          return out;
        });
  });
}

Napi::Value VaeTrainerWrap::optimizerSteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    return addonState(env).compute->run(
        env, [trainer] { return trainer->optimizerSteps(); },
        [](Napi::Env env, int64_t& steps) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(steps)); });
  });
}

Napi::Value VaeTrainerWrap::dispose(const Napi::CallbackInfo& info) {
  trainer_.reset();
  return info.Env().Undefined();
}

Napi::Value VaeTrainerWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !trainer_); }

}  // namespace difftune
