#include "binding/trainer_wrap.h"

#include <cmath>

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/clip_text_wrap.h"
#include "binding/dist_wrap.h"
#include "binding/errors.h"
#include "binding/named_tensors.h"
#include "binding/tensor_wrap.h"
#include "binding/unet_wrap.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

constexpr int64_t kMaxSafe = (int64_t{1} << 53) - 1;

double optionalNumber(const Napi::Object& o, const std::string& key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  return fieldNumber(o, key, "config");
}

TrainerConfig parseTrainerConfig(const Napi::Object& o) {
  const std::string p = "config";
  TrainerConfig c;
  Napi::Value list = o.Get("trainable");
  if (!list.IsArray()) failArg("an array of { name, lrMultiplier, weightDecay }", "config.trainable", list);
  Napi::Array arr = list.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    std::string where = "config.trainable[" + std::to_string(i) + "]";
    Napi::Object item = expectObject(arr.Get(i), where);
    TrainableParam t;
    t.name = fieldString(item, "name", where);
    t.lrMultiplier = fieldNumber(item, "lrMultiplier", where);
    t.weightDecay = fieldBool(item, "weightDecay", where);
    if (!item.Get("rows").IsUndefined()) t.rows = fieldIntList(item, "rows", where, 0, kMaxSafe);
    c.trainable.push_back(t);
  }
  c.beta1 = optionalNumber(o, "beta1", c.beta1);
  c.beta2 = optionalNumber(o, "beta2", c.beta2);
  c.eps = optionalNumber(o, "eps", c.eps);
  c.weightDecay = optionalNumber(o, "weightDecay", c.weightDecay);
  c.maxGradNorm = optionalNumber(o, "maxGradNorm", c.maxGradNorm);
  c.predictionType = fieldString(o, "predictionType", p);
  c.alphasCumprod = TensorWrap::unwrapArg(o.Get("alphasCumprod"), "config.alphasCumprod");
  c.timestepMin = static_cast<int64_t>(optionalNumber(o, "timestepMin", 0));
  c.timestepMax = static_cast<int64_t>(optionalNumber(o, "timestepMax", -1));
  c.minSnrGamma = optionalNumber(o, "minSnrGamma", 0);
  c.noiseOffset = optionalNumber(o, "noiseOffset", 0);
  c.inputPerturbation = optionalNumber(o, "inputPerturbation", 0);
  c.seed = static_cast<uint64_t>(fieldInt(o, "seed", p, 0, kMaxSafe));
  c.ema = fieldBool(o, "ema", p);
  c.emaDecay = optionalNumber(o, "emaDecay", c.emaDecay);
  c.emaMinDecay = optionalNumber(o, "emaMinDecay", c.emaMinDecay);
  c.emaInvGamma = optionalNumber(o, "emaInvGamma", c.emaInvGamma);
  c.emaPower = optionalNumber(o, "emaPower", c.emaPower);
  c.emaUpdateAfterStep = static_cast<int64_t>(optionalNumber(o, "emaUpdateAfterStep", 0));
  c.emaUpdateEvery = static_cast<int64_t>(optionalNumber(o, "emaUpdateEvery", 1));
  if (!o.Get("emaWarmup").IsUndefined()) c.emaWarmup = fieldBool(o, "emaWarmup", p);
  if (!o.Get("emaOnCpu").IsUndefined()) c.emaOnCpu = fieldBool(o, "emaOnCpu", p);
  c.mixedPrecision = fieldString(o, "mixedPrecision", p);
  if (!o.Get("conditioningPrefix").IsUndefined()) c.conditioningPrefix = fieldString(o, "conditioningPrefix", p);
  c.conditioningClipSkip = static_cast<int64_t>(optionalNumber(o, "conditioningClipSkip", 0));
  return c;
}

Tensor optionalTensor(const Napi::Object& o, const std::string& key, const std::string& param) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() || v.IsNull() ? Tensor() : TensorWrap::unwrapArg(v, param + "." + key);
}

}  // namespace

Napi::Function TrainerWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeTrainer",
                     {
                         StaticMethod<&TrainerWrap::create>("create"),
                         InstanceMethod<&TrainerWrap::accumulate>("accumulate"),
                         InstanceMethod<&TrainerWrap::step>("step"),
                         InstanceMethod<&TrainerWrap::validationLoss>("validationLoss"),
                         InstanceMethod<&TrainerWrap::optimizerState>("optimizerState"),
                         InstanceMethod<&TrainerWrap::loadOptimizerState>("loadOptimizerState"),
                         InstanceMethod<&TrainerWrap::emaWeights>("emaWeights"),
                         InstanceMethod<&TrainerWrap::loadEmaWeights>("loadEmaWeights"),
                         InstanceMethod<&TrainerWrap::counters>("counters"),
                         InstanceMethod<&TrainerWrap::setLossScale>("setLossScale"),
                         InstanceMethod<&TrainerWrap::setProcessGroup>("setProcessGroup"),
                         InstanceMethod<&TrainerWrap::dispose>("dispose"),
                         InstanceAccessor<&TrainerWrap::disposed>("disposed"),
                     });
}

TrainerWrap::TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
  boundary(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw InvalidArgument("NativeTrainer cannot be constructed directly; use NativeTrainer.create(unet, config)");
    trainer_ = *info[0].As<Napi::External<std::shared_ptr<Trainer>>>().Data();
    return 0;
  });
}

std::shared_ptr<Trainer> TrainerWrap::live() const {
  if (!trainer_) throw Disposed("Trainer was used after dispose()");
  return trainer_;
}

Napi::Value TrainerWrap::create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = UNetWrap::modelArg(argAt(info, 0), "unet");
    TrainerConfig config = parseTrainerConfig(expectObject(argAt(info, 1), "config"));
    Napi::Value c = info.Length() > 2 ? info[2] : env.Undefined();
    std::shared_ptr<TrainableConditioning> conditioning;
    if (!c.IsUndefined() && !c.IsNull()) conditioning = ClipTextWrap::modelArg(c, "conditioning");
    return addonState(env).compute->run(
        env, [model, config, conditioning] { return std::make_shared<Trainer>(model, config, conditioning); },
        [](Napi::Env env, std::shared_ptr<Trainer>& trainer) -> Napi::Value {
          auto ext = Napi::External<std::shared_ptr<Trainer>>::New(env, &trainer);
          return addonState(env).trainerConstructor.New({ext});
        });
  });
}

Napi::Value TrainerWrap::accumulate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    Napi::Object o = expectObject(argAt(info, 0), "batch");
    MicroBatch b;
    b.pixels = TensorWrap::unwrapArg(o.Get("pixels"), "batch.pixels");
    b.classLabels = optionalTensor(o, "classLabels", "batch");
    b.context = optionalTensor(o, "encoderHiddenStates", "batch");
    b.inputIds = optionalTensor(o, "inputIds", "batch");
    b.sampleIndices = fieldIntList(o, "sampleIndices", "batch", 0, kMaxSafe);
    b.step = fieldInt(o, "step", "batch", 0, kMaxSafe);
    b.totalSamples = fieldInt(o, "totalSamples", "batch", 1, kMaxSafe);
    Napi::Value divisor = o.Get("lossDivisor");
    if (!divisor.IsUndefined()) {
      if (!divisor.IsNumber() || !(divisor.As<Napi::Number>().DoubleValue() > 0))
        failArg("a positive number", "batch.lossDivisor", divisor);
      b.lossDivisor = divisor.As<Napi::Number>().DoubleValue();
    }
    Napi::Value weights = o.Get("lossWeights");
    if (!weights.IsUndefined()) {
      if (!weights.IsArray()) failArg("an array of one weight per sample", "batch.lossWeights", weights);
      Napi::Array a = weights.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value w = a.Get(i);
        double v = w.IsNumber() ? w.As<Napi::Number>().DoubleValue() : -1;
        if (!(v >= 0) || !std::isfinite(v)) failArg("a finite non-negative number", "batch.lossWeights[" + std::to_string(i) + "]", w);
        b.lossWeights.push_back(v);
      }
    }
    return addonState(env).compute->run(
        env, [trainer, b] { return trainer->accumulate(b); },
        [](Napi::Env env, MicroResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("lossSum", r.lossSum);
          out.Set("samples", static_cast<double>(r.samples));
          out.Set("finite", r.finite);
          return out;
        });
  });
}

Napi::Value TrainerWrap::step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    Napi::Value lrArg = argAt(info, 0);
    if (!lrArg.IsNumber() || !(lrArg.As<Napi::Number>().DoubleValue() >= 0)) failArg("a non-negative learning rate", "lr", lrArg);
    double lr = lrArg.As<Napi::Number>().DoubleValue();
    return addonState(env).compute->run(
        env, [trainer, lr] { return trainer->step(lr); },
        [](Napi::Env env, OptimizerStepResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("gradNorm", r.gradNorm);
          out.Set("skipped", r.skipped);
          out.Set("optimizerSteps", static_cast<double>(r.optimizerSteps));
          out.Set("emaDecay", r.emaDecay);
          out.Set("lossScale", r.lossScale);
          return out;
        });
  });
}

Napi::Value TrainerWrap::validationLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    Napi::Object o = expectObject(argAt(info, 0), "batch");
    Tensor pixels = TensorWrap::unwrapArg(o.Get("pixels"), "batch.pixels");
    Tensor labels = optionalTensor(o, "classLabels", "batch");
    Tensor context = optionalTensor(o, "encoderHiddenStates", "batch");
    Tensor inputIds = optionalTensor(o, "inputIds", "batch");
    std::vector<int64_t> indices = fieldIntList(o, "sampleIndices", "batch", 0, kMaxSafe);
    uint64_t seed = static_cast<uint64_t>(fieldInt(o, "seed", "batch", 0, kMaxSafe));
    std::vector<int64_t> timesteps = fieldIntList(o, "timesteps", "batch", 0, 1000000);
    return addonState(env).compute->run(
        env, [=] { return trainer->validationLoss(pixels, labels, context, inputIds, indices, seed, timesteps); },
        [](Napi::Env env, double& loss) -> Napi::Value { return Napi::Number::New(env, loss); });
  });
}

Napi::Value TrainerWrap::optimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    return addonState(env).compute->run(
        env, [trainer] { return trainer->optimizerState(); },
        [](Napi::Env env, NamedTensors& t) -> Napi::Value { return namedTensorsToJs(env, t); });
  });
}

Napi::Value TrainerWrap::loadOptimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    NamedTensors state = namedTensorsFromJs(argAt(info, 0), argAt(info, 1), "optimizer state");
    int64_t steps = expectInt(argAt(info, 2), "optimizerSteps", 0, kMaxSafe);
    return addonState(env).compute->runVoid(env, [trainer, state, steps] { trainer->loadOptimizerState(state, steps); });
  });
}

Napi::Value TrainerWrap::emaWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    return addonState(env).compute->run(
        env, [trainer] { return trainer->emaWeights(); },
        [](Napi::Env env, NamedTensors& t) -> Napi::Value { return namedTensorsToJs(env, t); });
  });
}

Napi::Value TrainerWrap::loadEmaWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    NamedTensors weights = namedTensorsFromJs(argAt(info, 0), argAt(info, 1), "EMA weights");
    int64_t updates = expectInt(argAt(info, 2), "updates", 0, kMaxSafe);
    return addonState(env).compute->runVoid(env, [trainer, weights, updates] { trainer->loadEmaWeights(weights, updates); });
  });
}

Napi::Value TrainerWrap::counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    struct Counters {
      int64_t steps, ema;
      double scale;
    };
    return addonState(env).compute->run(
        env,
        [trainer] {
          return Counters{trainer->optimizerSteps(), trainer->emaUpdates(), trainer->lossScale()};
        },
        [](Napi::Env env, Counters& c) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("optimizerSteps", static_cast<double>(c.steps));
          out.Set("emaUpdates", static_cast<double>(c.ema));
          out.Set("lossScale", c.scale);
          return out;
        });
  });
}

// Restores a checkpoint's fp16 loss scale, so a resumed run continues with the scale it had reached.
Napi::Value TrainerWrap::setLossScale(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    Napi::Value v = argAt(info, 0);
    if (!v.IsNumber() || !(v.As<Napi::Number>().DoubleValue() >= 1) || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
      failArg("a finite number ≥ 1", "scale", v);
    double scale = v.As<Napi::Number>().DoubleValue();
    return addonState(env).compute->runVoid(env, [trainer, scale] { trainer->setLossScale(scale); });
  });
}

Napi::Value TrainerWrap::setProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto trainer = live();
    Napi::Value arg = argAt(info, 0);
    std::shared_ptr<ProcessGroup> group = arg.IsNull() || arg.IsUndefined() ? nullptr : DistWrap::groupArg(arg, "group");
    // Broadcasts rank 0's trainable weights on the compute thread, then reduces every step's gradients.
    return addonState(env).compute->runVoid(env, [trainer, group] { trainer->setGradientReducer(group); });
  });
}

Napi::Value TrainerWrap::dispose(const Napi::CallbackInfo& info) {
  trainer_.reset();
  return info.Env().Undefined();
}

Napi::Value TrainerWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !trainer_); }

}  // namespace difftune
