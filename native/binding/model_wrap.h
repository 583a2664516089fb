// What every model handle (NativeUNet, NativeAutoencoderKL, NativeCLIPTextModel) does the same way,
// written once: construction only through create(config) on the compute thread, the use-after-dispose
// check, and the common methods parameters / loadStateDict / checkStateDict / copyWeights / stateDict /
// to / initialize / dispose / disposed, each run on the compute thread. The handle holds a shared reference to the model, so
// dispose() during a job in flight is safe.
//
// A handle derives from ModelWrap<Itself, Model> (CRTP) and gives the base (as a friend):
//   static constexpr const char* kClassName;  // the JS class, "NativeUNet"
//   static constexpr const char* kModelName;  // the name in the disposed error, "UNet"
//   static Napi::FunctionReference& constructor(AddonState&);
//   static <Model's config> parseConfig(const Napi::Object&);
// and defines its class with defineModel(env, { its own methods }).
#pragma once

#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "binding/model_values.h"
#include "binding/named_tensors.h"
#include "tensor/failure.h"

namespace difftune {

template <typename Derived, typename Model>
class ModelWrap : public Napi::ObjectWrap<Derived> {
 public:
  explicit ModelWrap(const Napi::CallbackInfo& info);

 protected:
  using Property = Napi::ClassPropertyDescriptor<Derived>;

  // The class: static create, the common methods, then `own`, then dispose and the disposed accessor.
  static Napi::Function defineModel(Napi::Env env, std::initializer_list<Property> own);

  // The model, or a Disposed error once dispose() ran.
  std::shared_ptr<Model> live() const;

 private:
  using Wrap = Napi::ObjectWrap<Derived>;
  using Method = Napi::Value (Derived::*)(const Napi::CallbackInfo&);

  static Napi::Value create(const Napi::CallbackInfo& info);
  Napi::Value parameters(const Napi::CallbackInfo& info);
  Napi::Value loadStateDict(const Napi::CallbackInfo& info);
  Napi::Value checkStateDict(const Napi::CallbackInfo& info);
  Napi::Value copyWeights(const Napi::CallbackInfo& info);
  Napi::Value stateDict(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value initialize(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);

  std::shared_ptr<Model> model_;
};

template <typename Derived, typename Model>
ModelWrap<Derived, Model>::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Derived>(info) {
  boundary(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw InvalidArgument(std::string(Derived::kClassName) + " cannot be constructed directly; use " + Derived::kClassName +
                            ".create(config)");
    model_ = *info[0].As<Napi::External<std::shared_ptr<Model>>>().Data();
    return 0;
  });
}

template <typename Derived, typename Model>
Napi::Function ModelWrap<Derived, Model>::defineModel(Napi::Env env, std::initializer_list<Property> own) {
  // Runtime (not template) descriptors: a pointer to a base member converts to Derived's only at run time.
  std::vector<Property> properties = {
      Wrap::template StaticMethod<&ModelWrap::create>("create"),
      Wrap::InstanceMethod("parameters", static_cast<Method>(&ModelWrap::parameters)),
      Wrap::InstanceMethod("loadStateDict", static_cast<Method>(&ModelWrap::loadStateDict)),
      Wrap::InstanceMethod("checkStateDict", static_cast<Method>(&ModelWrap::checkStateDict)),
      Wrap::InstanceMethod("copyWeights", static_cast<Method>(&ModelWrap::copyWeights)),
      Wrap::InstanceMethod("stateDict", static_cast<Method>(&ModelWrap::stateDict)),
      Wrap::InstanceMethod("to", static_cast<Method>(&ModelWrap::to)),
      Wrap::InstanceMethod("initialize", static_cast<Method>(&ModelWrap::initialize)),
  };
  properties.insert(properties.end(), own.begin(), own.end());
  properties.push_back(Wrap::InstanceMethod("dispose", static_cast<Method>(&ModelWrap::dispose)));
  properties.push_back(Wrap::InstanceAccessor("disposed", static_cast<Method>(&ModelWrap::disposed), nullptr));
  return Wrap::DefineClass(env, Derived::kClassName, properties);
}

template <typename Derived, typename Model>
std::shared_ptr<Model> ModelWrap<Derived, Model>::live() const {
  if (!model_) throw Disposed(std::string(Derived::kModelName) + " was used after dispose()");
  return model_;
}

template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto config = Derived::parseConfig(expectObject(argAt(info, 0), "config"));
    return addonState(env).compute->run(
        env, [config] { return std::make_shared<Model>(config); },
        [](Napi::Env env, std::shared_ptr<Model>& model) -> Napi::Value {
          auto ext = Napi::External<std::shared_ptr<Model>>::New(env, &model);
          return Derived::constructor(addonState(env)).New({ext});
        });
  });
}

template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::parameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    return addonState(env).compute->run(
        env, [model] { return model->parameters(); },
        [](Napi::Env env, std::vector<ParameterInfo>& params) -> Napi::Value { return parameterInfosToJs(env, params); });
  });
}

template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::loadStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    NamedTensors weights = namedTensorsFromJs(argAt(info, 0), argAt(info, 1), "weights");
    std::string source = expectString(argAt(info, 2), "source");
    return addonState(env).compute->runVoid(env, [model, weights, source] { model->loadStateDict(weights, source); });
  });
}

// checkStateDict(names, shapes, dtypes, source): the strict check of a whole state dict from a file's header.
template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::checkStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    std::vector<std::string> names = expectStringArray(argAt(info, 0), "names");
    Napi::Value shapesArg = argAt(info, 1), dtypesArg = argAt(info, 2);
    if (!shapesArg.IsArray() || shapesArg.As<Napi::Array>().Length() != names.size())
      failArg("an array of " + std::to_string(names.size()) + " shapes (one per name)", "shapes", shapesArg);
    if (!dtypesArg.IsArray() || dtypesArg.As<Napi::Array>().Length() != names.size())
      failArg("an array of " + std::to_string(names.size()) + " dtypes (one per name)", "dtypes", dtypesArg);
    Napi::Array shapes = shapesArg.As<Napi::Array>(), dtypes = dtypesArg.As<Napi::Array>();
    std::vector<ParameterInfo> weights;
    weights.reserve(names.size());
    for (uint32_t i = 0; i < names.size(); ++i) {
      std::string at = "[" + std::to_string(i) + "]";
      weights.push_back({names[i], expectShape(shapes.Get(i), "shapes" + at), expectDType(dtypes.Get(i), "dtypes" + at), false});
    }
    std::string source = expectString(argAt(info, 3), "source");
    return addonState(env).compute->runVoid(env, [model, weights, source] { model->checkStateDict(weights, source); });
  });
}

// copyWeights(names, tensors, source): some weights copied in, after checkStateDict passed for all of them.
template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::copyWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    NamedTensors weights = namedTensorsFromJs(argAt(info, 0), argAt(info, 1), "weights");
    std::string source = expectString(argAt(info, 2), "source");
    return addonState(env).compute->runVoid(env, [model, weights, source] { model->copyWeights(weights, source); });
  });
}

template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::stateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    return addonState(env).compute->run(
        env, [model] { return model->stateDict(); },
        [](Napi::Env env, NamedTensors& tensors) -> Napi::Value { return namedTensorsToJs(env, tensors); });
  });
}

template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::to(const Napi::CallbackInfo& info) {
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

template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::initialize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    auto model = live();
    uint64_t seed = static_cast<uint64_t>(expectInt(argAt(info, 0), "seed", 0, (int64_t{1} << 53) - 1));
    return addonState(env).compute->runVoid(env, [model, seed] { model->initialize(seed); });
  });
}

template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::dispose(const Napi::CallbackInfo& info) {
  model_.reset();
  return info.Env().Undefined();
}

template <typename Derived, typename Model>
Napi::Value ModelWrap<Derived, Model>::disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !model_);
}

}  // namespace difftune
