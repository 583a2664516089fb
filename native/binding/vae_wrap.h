// The JS handle on an AutoencoderKL (NativeAutoencoderKL). All model work runs on the compute thread;
// the handle holds a shared reference, so dispose() during a job in flight is safe.
#pragma once

#include <napi.h>

#include <memory>

#include "vae/vae_model.h"

namespace difftune {

class VaeWrap : public Napi::ObjectWrap<VaeWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit VaeWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  Napi::Value parameters(const Napi::CallbackInfo& info);
  Napi::Value loadStateDict(const Napi::CallbackInfo& info);
  Napi::Value stateDict(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value initialize(const Napi::CallbackInfo& info);
  Napi::Value encode(const Napi::CallbackInfo& info);
  Napi::Value decode(const Napi::CallbackInfo& info);
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value sample(const Napi::CallbackInfo& info);
  Napi::Value decodeBackwardMse(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);

  std::shared_ptr<VaeModel> live() const;
  std::shared_ptr<VaeModel> model_;
};

}  // namespace difftune
