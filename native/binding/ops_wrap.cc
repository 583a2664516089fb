#include "binding/ops_wrap.h"

#include <cmath>

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "binding/generator_wrap.h"
#include "binding/tensor_wrap.h"
#include "tensor/ops.h"

namespace difftune {

namespace {

Napi::Value tensorResult(Napi::Env env, Tensor& t) { return TensorWrap::create(env, t); }

double finiteNumber(const Napi::Value& v, const std::string& param) {
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue())) failArg("a finite number", param, v);
  return v.As<Napi::Number>().DoubleValue();
}

Napi::Value concatJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    Napi::Value arg = argAt(info, 0);
    if (!arg.IsArray()) failArg("an array of Tensors", "tensors", arg);
    Napi::Array array = arg.As<Napi::Array>();
    std::vector<Tensor> tensors;
    for (uint32_t i = 0; i < array.Length(); ++i)
      tensors.push_back(TensorWrap::unwrapArg(array.Get(i), "tensors[" + std::to_string(i) + "]"));
    int64_t dim = expectInt(argAt(info, 1), "dim", -8, 7);
    return addonState(env).compute->run(
        env, [tensors, dim] { return concat(tensors, dim); }, tensorResult);
  });
}

Napi::Value guidanceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    Tensor output = TensorWrap::unwrapArg(argAt(info, 0), "output");
    Napi::Value s = argAt(info, 1);
    if (!s.IsNumber()) failArg("a number", "guidanceScale", s);
    double scale = s.As<Napi::Number>().DoubleValue();
    return addonState(env).compute->run(
        env, [output, scale] { return classifierFreeGuidance(output, scale); }, tensorResult);
  });
}

Napi::Value randnJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    std::vector<int64_t> shape = expectShape(argAt(info, 0), "shape");
    std::string device = expectString(argAt(info, 1), "device");
    Napi::Value g = argAt(info, 2);
    bool seeded = !g.IsUndefined() && !g.IsNull();
    Generator generator = seeded ? GeneratorWrap::unwrapArg(g, "generator") : Generator();
    return addonState(env).compute->run(
        env, [shape, device, generator, seeded] { return randn(shape, device, seeded ? &generator : nullptr); }, tensorResult);
  });
}

Napi::Value scaleJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    Tensor t = TensorWrap::unwrapArg(argAt(info, 0), "tensor");
    double factor = finiteNumber(argAt(info, 1), "factor");
    return addonState(env).compute->run(
        env, [t, factor] { return scale(t, factor); }, tensorResult);
  });
}

Napi::Value gaussianSampleJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    Tensor mean = TensorWrap::unwrapArg(argAt(info, 0), "mean");
    Tensor logvar = TensorWrap::unwrapArg(argAt(info, 1), "logvar");
    Tensor noise = TensorWrap::unwrapArg(argAt(info, 2), "noise");
    double factor = finiteNumber(argAt(info, 3), "factor");
    return addonState(env).compute->run(
        env, [mean, logvar, noise, factor] { return gaussianSample(mean, logvar, noise, factor); }, tensorResult);
  });
}

}  // namespace

void registerOps(Napi::Env env, Napi::Object exports) {
  exports.Set("concat", Napi::Function::New<concatJs>(env, "concat"));
  exports.Set("randn", Napi::Function::New<randnJs>(env, "randn"));
  exports.Set("classifierFreeGuidance", Napi::Function::New<guidanceJs>(env, "classifierFreeGuidance"));
  exports.Set("scale", Napi::Function::New<scaleJs>(env, "scale"));
  exports.Set("gaussianSample", Napi::Function::New<gaussianSampleJs>(env, "gaussianSample"));
}

}  // namespace difftune
