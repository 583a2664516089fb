// The JS Tensor handle: owns one reference to a libtorch tensor. dispose() drops it at once;
// the GC finalizer is only a safety net. Native bytes are reported to V8 so GC pressure is right.
#pragma once

#include <napi.h>

#include "tensor/tensor.h"

namespace difftune {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  // Wraps a native tensor into a new JS handle (main thread).
  static Napi::Object create(Napi::Env env, Tensor tensor);
  // The tensor behind a JS value that must be a live Tensor handle; throws a clear error otherwise.
  static const Tensor& unwrapArg(const Napi::Value& value, const std::string& param);

  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;

 private:
  static Napi::Value fromBytes(const Napi::CallbackInfo& info);
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value byteLength(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value readSync(const Napi::CallbackInfo& info);
  Napi::Value read(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  const Tensor& live() const;
  void release(Napi::Env env);

  Tensor tensor_;
  int64_t reportedBytes_ = 0;
};

}  // namespace difftune
