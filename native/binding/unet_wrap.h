// The JS handle on a U-Net (NativeUNet). All model work runs on the compute thread; the common model
// methods come from ModelWrap (binding/model_wrap.h).
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "binding/model_wrap.h"
#include "unet/unet_model.h"

namespace difftune {

class UNetWrap : public ModelWrap<UNetWrap, UNetModel> {
 public:
  static Napi::Function define(Napi::Env env);
  using ModelWrap::ModelWrap;
  // The model behind a JS value that must be a live NativeUNet.
  static std::shared_ptr<UNetModel> modelArg(const Napi::Value& value, const std::string& param);

 private:
  friend ModelWrap;
  static constexpr const char* kClassName = "NativeUNet";
  static constexpr const char* kModelName = "UNet";
  static Napi::FunctionReference& constructor(AddonState& state) { return state.unetConstructor; }
  static UNetConfig parseConfig(const Napi::Object& o);

  Napi::Value setTraining(const Napi::CallbackInfo& info);
  Napi::Value setOptions(const Napi::CallbackInfo& info);
  Napi::Value addLora(const Napi::CallbackInfo& info);
  Napi::Value setLora(const Napi::CallbackInfo& info);
  Napi::Value loraEntries(const Napi::CallbackInfo& info);
  Napi::Value mergeLora(const Napi::CallbackInfo& info);
  Napi::Value removeLora(const Napi::CallbackInfo& info);
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value forwardBackwardMse(const Napi::CallbackInfo& info);
};

}  // namespace difftune
