// Named tensor lists across the boundary: JS sees { names: string[], tensors: NativeTensor[] }.
#pragma once

#include <napi.h>

#include <string>

#include "nn/model_types.h"

namespace difftune {

Napi::Object namedTensorsToJs(Napi::Env env, NamedTensors& tensors);
// Two parallel arrays (names, tensors), checked element by element.
NamedTensors namedTensorsFromJs(const Napi::Value& names, const Napi::Value& tensors, const std::string& param);

}  // namespace difftune
