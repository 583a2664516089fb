#include "binding/named_tensors.h"

#include "binding/args.h"
#include "binding/tensor_wrap.h"

namespace difftune {

Napi::Object namedTensorsToJs(Napi::Env env, NamedTensors& tensors) {
  Napi::Array names = Napi::Array::New(env, tensors.size());
  Napi::Array values = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    names.Set(static_cast<uint32_t>(i), tensors[i].first);
    values.Set(static_cast<uint32_t>(i), TensorWrap::create(env, tensors[i].second));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("names", names);
  out.Set("tensors", values);
  return out;
}

NamedTensors namedTensorsFromJs(const Napi::Value& namesArg, const Napi::Value& tensorsArg, const std::string& param) {
  std::vector<std::string> names = expectStringArray(namesArg, param + " names");
  if (!tensorsArg.IsArray() || tensorsArg.As<Napi::Array>().Length() != names.size())
    failArg("an array of " + std::to_string(names.size()) + " Tensors (one per name)", param + " tensors", tensorsArg);
  Napi::Array tensors = tensorsArg.As<Napi::Array>();
  NamedTensors out;
  for (uint32_t i = 0; i < names.size(); ++i)
    out.emplace_back(names[i], TensorWrap::unwrapArg(tensors.Get(i), param + " tensors[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace difftune
