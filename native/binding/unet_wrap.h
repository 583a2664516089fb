// The JS handle on a U-Net (NativeUNet). All model work runs on the compute thread; the handle
// holds a shared reference, so dispose() during a job in flight is safe.
#pragma once

#include <napi.h>

#include <memory>

#include "unet/unet_model.h"

namespace difftune {

class UNetWrap : public Napi::ObjectWrap<UNetWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit UNetWrap(const Napi::CallbackInfo& info);
  // The model behind a JS value that must be a live NativeUNet.
  static std::shared_ptr<UNetModel> modelArg(const Napi::Value& value, const std::string& param);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  Napi::Value parameters(const Napi::CallbackInfo& info);
  Napi::Value loadStateDict(const Napi::CallbackInfo& info);
  Napi::Value stateDict(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value initialize(const Napi::CallbackInfo& info);
  Napi::Value setTraining(const Napi::CallbackInfo& info);
  Napi::Value setOptions(const Napi::CallbackInfo& info);
  Napi::Value addLora(const Napi::CallbackInfo& info);
  Napi::Value setLora(const Napi::CallbackInfo& info);
  Napi::Value loraEntries(const Napi::CallbackInfo& info);
  Napi::Value mergeLora(const Napi::CallbackInfo& info);
  Napi::Value removeLora(const Napi::CallbackInfo& info);
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value forwardBackwardMse(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);

  std::shared_ptr<UNetModel> live() const;
  std::shared_ptr<UNetModel> model_;
};

}  // namespace difftune
