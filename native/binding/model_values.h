// JS values shared by the model handles (binding/model_wrap.h): parameter listings.
#pragma once

#include <napi.h>

#include <vector>

#include "nn/model_types.h"

namespace difftune {

// [{ name, shape, dtype, requiresGrad }, ...]
Napi::Array parameterInfosToJs(Napi::Env env, const std::vector<ParameterInfo>& params);

}  // namespace difftune
