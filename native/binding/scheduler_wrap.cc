#include "binding/scheduler_wrap.h"

#include <cmath>

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "binding/generator_wrap.h"
#include "binding/scheduler_config_args.h"
#include "binding/tensor_wrap.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

double expectTimestep(const Napi::Value& value, const std::string& param) {
  if (!value.IsNumber() || !std::isfinite(value.As<Napi::Number>().DoubleValue()))
    failArg("a finite number (one of scheduler.timesteps)", param, value);
  return value.As<Napi::Number>().DoubleValue();
}

double optionalNumber(const Napi::Object& options, const char* key, double fallback) {
  Napi::Value v = options.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber() || std::isnan(v.As<Napi::Number>().DoubleValue())) failArg("a number", std::string("options.") + key, v);
  return v.As<Napi::Number>().DoubleValue();
}

StepOptions readStepOptions(const Napi::Value& value) {
  StepOptions o;
  if (value.IsUndefined() || value.IsNull()) return o;
  Napi::Object options = expectObject(value, "options");
  o.eta = optionalNumber(options, "eta", 0.0);
  if (!(o.eta >= 0) || !std::isfinite(o.eta)) failArg("a finite non-negative number", "options.eta", options.Get("eta"));
  Napi::Value clipped = options.Get("useClippedModelOutput");
  if (!clipped.IsUndefined()) o.useClippedModelOutput = expectBool(clipped, "options.useClippedModelOutput");
  Napi::Value noise = options.Get("varianceNoise");
  if (!noise.IsUndefined()) o.varianceNoise = TensorWrap::unwrapArg(noise, "options.varianceNoise");
  Napi::Value generator = options.Get("generator");
  if (!generator.IsUndefined()) o.generator = GeneratorWrap::unwrapArg(generator, "options.generator");
  o.sChurn = optionalNumber(options, "sChurn", 0.0);
  o.sTmin = optionalNumber(options, "sTmin", 0.0);
  o.sTmax = optionalNumber(options, "sTmax", std::numeric_limits<double>::infinity());
  o.sNoise = optionalNumber(options, "sNoise", 1.0);
  if (!(o.sChurn >= 0) || !std::isfinite(o.sChurn)) failArg("a finite non-negative number", "options.sChurn", options.Get("sChurn"));
  return o;
}

Napi::Value tensorOrNull(Napi::Env env, const Tensor& t) { return t.defined() ? Napi::Value(TensorWrap::create(env, t)) : env.Null(); }

Napi::Value scheduleToJs(Napi::Env env, const ScheduleInfo& info) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("timesteps", TensorWrap::create(env, info.timesteps));
  o.Set("sigmas", tensorOrNull(env, info.sigmas));
  o.Set("initNoiseSigma", info.initNoiseSigma);
  o.Set("numInferenceSteps", static_cast<double>(info.numInferenceSteps));
  return o;
}

Napi::Value tensorToJs(Napi::Env env, Tensor& t) { return TensorWrap::create(env, t); }

}  // namespace

Napi::Function SchedulerWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeScheduler",
                     {
                         StaticMethod<&SchedulerWrap::create>("create"),
                         InstanceAccessor<&SchedulerWrap::disposed>("disposed"),
                         InstanceMethod<&SchedulerWrap::setTimesteps>("setTimesteps"),
                         InstanceMethod<&SchedulerWrap::schedule>("schedule"),
                         InstanceMethod<&SchedulerWrap::tables>("tables"),
                         InstanceMethod<&SchedulerWrap::scaleInitialNoise>("scaleInitialNoise"),
                         InstanceMethod<&SchedulerWrap::scaleModelInput>("scaleModelInput"),
                         InstanceMethod<&SchedulerWrap::step>("step"),
                         InstanceMethod<&SchedulerWrap::addNoise>("addNoise"),
                         InstanceMethod<&SchedulerWrap::getVelocity>("getVelocity"),
                         InstanceMethod<&SchedulerWrap::snr>("snr"),
                         InstanceMethod<&SchedulerWrap::dispose>("dispose"),
                     });
}

SchedulerWrap::SchedulerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SchedulerWrap>(info) {
  boundary(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw InvalidArgument("NativeScheduler cannot be constructed directly; use NativeScheduler.create(config)");
    scheduler_ = *info[0].As<Napi::External<std::shared_ptr<Scheduler>>>().Data();
    return 0;
  });
}

std::shared_ptr<Scheduler> SchedulerWrap::live() const {
  if (scheduler_ == nullptr) throw Disposed("Scheduler was used after dispose()");
  return scheduler_;
}

Napi::Value SchedulerWrap::create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    SchedulerConfig config = readSchedulerConfig(argAt(info, 0), "config");
    return addonState(env).compute->run(
        env, [config] { return std::shared_ptr<Scheduler>(makeScheduler(config)); },
        [](Napi::Env env, std::shared_ptr<Scheduler>& scheduler) -> Napi::Value {
          auto external = Napi::External<std::shared_ptr<Scheduler>>::New(env, &scheduler);
          return addonState(env).schedulerConstructor.New({external});
        });
  });
}

Napi::Value SchedulerWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), scheduler_ == nullptr); }

Napi::Value SchedulerWrap::setTimesteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto s = live();
    int64_t n = expectInt(argAt(info, 0), "numInferenceSteps", 1, 100000);
    return addonState(env).compute->run(
        env,
        [s, n] {
          s->setTimesteps(n);
          return s->schedule();
        },
        scheduleToJs);
  });
}

Napi::Value SchedulerWrap::schedule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto s = live();
    return addonState(env).compute->run(
        env, [s] { return s->schedule(); }, scheduleToJs);
  });
}

Napi::Value SchedulerWrap::tables(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto s = live();
    return addonState(env).compute->run(
        env, [s] { return std::make_pair(s->betas(), s->alphasCumprod()); },
        [](Napi::Env env, std::pair<Tensor, Tensor>& t) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("betas", TensorWrap::create(env, t.first));
          o.Set("alphasCumprod", TensorWrap::create(env, t.second));
          return o;
        });
  });
}

Napi::Value SchedulerWrap::scaleInitialNoise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto s = live();
    Tensor noise = TensorWrap::unwrapArg(argAt(info, 0), "noise");
    return addonState(env).compute->run(
        env, [s, noise] { return s->scaleInitialNoise(noise); }, tensorToJs);
  });
}

Napi::Value SchedulerWrap::scaleModelInput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto s = live();
    Tensor sample = TensorWrap::unwrapArg(argAt(info, 0), "sample");
    double t = expectTimestep(argAt(info, 1), "timestep");
    return addonState(env).compute->run(
        env, [s, sample, t] { return s->scaleModelInput(sample, t); }, tensorToJs);
  });
}

Napi::Value SchedulerWrap::step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto s = live();
    Tensor modelOutput = TensorWrap::unwrapArg(argAt(info, 0), "modelOutput");
    double t = expectTimestep(argAt(info, 1), "timestep");
    Tensor sample = TensorWrap::unwrapArg(argAt(info, 2), "sample");
    StepOptions options = readStepOptions(argAt(info, 3));
    return addonState(env).compute->run(
        env, [s, modelOutput, t, sample, options] { return s->step(modelOutput, t, sample, options); },
        [](Napi::Env env, StepResult& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("prevSample", TensorWrap::create(env, r.prevSample));
          if (r.predOriginalSample.defined()) o.Set("predOriginalSample", TensorWrap::create(env, r.predOriginalSample));
          return o;
        });
  });
}

Napi::Value SchedulerWrap::addNoise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto s = live();
    Tensor original = TensorWrap::unwrapArg(argAt(info, 0), "originalSamples");
    Tensor noise = TensorWrap::unwrapArg(argAt(info, 1), "noise");
    Tensor timesteps = TensorWrap::unwrapArg(argAt(info, 2), "timesteps");
    return addonState(env).compute->run(
        env, [s, original, noise, timesteps] { return s->addNoise(original, noise, timesteps); }, tensorToJs);
  });
}

Napi::Value SchedulerWrap::getVelocity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto s = live();
    Tensor sample = TensorWrap::unwrapArg(argAt(info, 0), "sample");
    Tensor noise = TensorWrap::unwrapArg(argAt(info, 1), "noise");
    Tensor timesteps = TensorWrap::unwrapArg(argAt(info, 2), "timesteps");
    return addonState(env).compute->run(
        env, [s, sample, noise, timesteps] { return s->getVelocity(sample, noise, timesteps); }, tensorToJs);
  });
}

Napi::Value SchedulerWrap::snr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto s = live();
    Tensor timesteps = TensorWrap::unwrapArg(argAt(info, 0), "timesteps");
    return addonState(env).compute->run(
        env, [s, timesteps] { return s->snr(timesteps); }, tensorToJs);
  });
}

Napi::Value SchedulerWrap::dispose(const Napi::CallbackInfo& info) {
  // Jobs already queued hold their own reference and finish; nothing new can start.
  scheduler_.reset();
  return info.Env().Undefined();
}

}  // namespace difftune
