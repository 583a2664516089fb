// Module functions of the data pipeline: a decoded uint8 batch → the float tensor the model takes.
#pragma once

#include <napi.h>

namespace difftune {

void registerData(Napi::Env env, Napi::Object exports);

}  // namespace difftune
