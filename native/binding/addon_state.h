// Per-environment state of the addon (main thread and each worker_thread get their own).
#pragma once

#include <napi.h>

#include <memory>

#include "binding/compute_thread.h"

namespace difftune {

struct AddonState {
  std::unique_ptr<ComputeThread> compute;
  Napi::FunctionReference tensorConstructor;
  Napi::FunctionReference schedulerConstructor;
  Napi::FunctionReference generatorConstructor;
  Napi::FunctionReference unetConstructor;
  Napi::FunctionReference trainerConstructor;
  Napi::FunctionReference vaeConstructor;
  Napi::FunctionReference vaeTrainerConstructor;
  Napi::FunctionReference clipTextConstructor;
};

AddonState& addonState(Napi::Env env);
Napi::Object init(Napi::Env env, Napi::Object exports);

}  // namespace difftune
