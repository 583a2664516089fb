// The JS handle on a data-parallel process group (NativeProcessGroup): rendezvous, metric sums,
// barrier, shutdown; NativeTrainer.setProcessGroup hands it the gradients of every step.
#pragma once

#include <napi.h>

#include <memory>

#include "dist/process_group.h"

namespace difftune {

class DistWrap : public Napi::ObjectWrap<DistWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit DistWrap(const Napi::CallbackInfo& info);
  // The group behind a NativeProcessGroup argument (checked by its type tag).
  static std::shared_ptr<ProcessGroup> groupArg(const Napi::Value& value, const std::string& param);

 private:
  Napi::Value connect(const Napi::CallbackInfo& info);
  Napi::Value allreduceSum(const Napi::CallbackInfo& info);
  Napi::Value barrier(const Napi::CallbackInfo& info);
  Napi::Value shutdown(const Napi::CallbackInfo& info);
  Napi::Value counters(const Napi::CallbackInfo& info);
  Napi::Value backend(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);

  std::shared_ptr<ProcessGroup> live() const;
  std::shared_ptr<ProcessGroup> group_;
};

// distCapabilities() for JS: { gloo, nccl }.
void registerDist(Napi::Env env, Napi::Object exports);

}  // namespace difftune
