#include "binding/generator_wrap.h"

#include <cmath>

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "binding/tensor_wrap.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

uint64_t expectSeed(const Napi::Value& value, const std::string& param) {
  const char* what = "a non-negative safe integer or a BigInt in [0, 2^64)";
  if (value.IsBigInt()) {
    bool lossless = false;
    uint64_t seed = value.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) failArg(what, param, value);
    return seed;
  }
  if (!value.IsNumber()) failArg(what, param, value);
  double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < 0 || d > 9007199254740991.0) failArg(what, param, value);
  return static_cast<uint64_t>(d);
}

}  // namespace

Napi::Function GeneratorWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeGenerator",
                     {
                         InstanceAccessor<&GeneratorWrap::initialSeed>("initialSeed"),
                         InstanceAccessor<&GeneratorWrap::disposed>("disposed"),
                         InstanceMethod<&GeneratorWrap::manualSeed>("manualSeed"),
                         InstanceMethod<&GeneratorWrap::getState>("getState"),
                         InstanceMethod<&GeneratorWrap::setState>("setState"),
                         InstanceMethod<&GeneratorWrap::dispose>("dispose"),
                     });
}

GeneratorWrap::GeneratorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GeneratorWrap>(info) {
  boundary(info.Env(), [&] {
    generator_ = Generator::create(expectSeed(argAt(info, 0), "seed"));
    return 0;
  });
}

Generator GeneratorWrap::unwrapArg(const Napi::Value& value, const std::string& param) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addonState(env).generatorConstructor.Value()))
    failArg("a Generator", param, value);
  GeneratorWrap* wrap = Unwrap(value.As<Napi::Object>());
  if (!wrap->generator_.defined()) throw Disposed("Generator passed as " + param + " was used after dispose()");
  return wrap->generator_;
}

const Generator& GeneratorWrap::live() const {
  if (!generator_.defined()) throw Disposed("Generator was used after dispose()");
  return generator_;
}

Napi::Value GeneratorWrap::initialSeed(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return Napi::BigInt::New(info.Env(), live().initialSeed()); });
}

Napi::Value GeneratorWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !generator_.defined()); }

// Reseeding, saving and restoring go through the compute queue, so they take effect in order with
// the steps already submitted.
Napi::Value GeneratorWrap::manualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    Generator gen = live();
    uint64_t seed = expectSeed(argAt(info, 0), "seed");
    return addonState(env).compute->run(
        env,
        [gen, seed]() mutable {
          gen.manualSeed(seed);
          return true;
        },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value GeneratorWrap::getState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    Generator gen = live();
    return addonState(env).compute->run(
        env, [gen] { return gen.state(); }, [](Napi::Env env, Tensor& state) -> Napi::Value { return TensorWrap::create(env, state); });
  });
}

Napi::Value GeneratorWrap::setState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    Generator gen = live();
    Tensor state = TensorWrap::unwrapArg(argAt(info, 0), "state");
    return addonState(env).compute->run(
        env,
        [gen, state]() mutable {
          gen.setState(state);
          return true;
        },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value GeneratorWrap::dispose(const Napi::CallbackInfo& info) {
  generator_ = Generator();
  return info.Env().Undefined();
}

}  // namespace difftune
