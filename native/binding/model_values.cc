#include "binding/model_values.h"

namespace difftune {

Napi::Array parameterInfosToJs(Napi::Env env, const std::vector<ParameterInfo>& params) {
  Napi::Array out = Napi::Array::New(env, params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", params[i].name);
    Napi::Array shape = Napi::Array::New(env, params[i].shape.size());
    for (size_t d = 0; d < params[i].shape.size(); ++d) shape.Set(static_cast<uint32_t>(d), static_cast<double>(params[i].shape[d]));
    p.Set("shape", shape);
    p.Set("dtype", dtypeName(params[i].dtype));
    p.Set("requiresGrad", params[i].requiresGrad);
    out.Set(static_cast<uint32_t>(i), p);
  }
  return out;
}

}  // namespace difftune
