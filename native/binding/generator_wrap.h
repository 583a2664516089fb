// The JS Generator handle: a seedable CPU random generator whose state can be saved and restored.
#pragma once

#include <napi.h>

#include <string>

#include "tensor/generator.h"

namespace difftune {

class GeneratorWrap : public Napi::ObjectWrap<GeneratorWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  // The generator behind a JS value that must be a live Generator handle; throws a clear error otherwise.
  static Generator unwrapArg(const Napi::Value& value, const std::string& param);

  // new NativeGenerator(seed): seed is a non-negative safe integer or a BigInt below 2^64.
  explicit GeneratorWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value initialSeed(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value manualSeed(const Napi::CallbackInfo& info);
  Napi::Value getState(const Napi::CallbackInfo& info);
  Napi::Value setState(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  const Generator& live() const;

  Generator generator_;
};

}  // namespace difftune
