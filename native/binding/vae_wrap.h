// The JS handle on an AutoencoderKL (NativeAutoencoderKL). All model work runs on the compute thread;
// the common model methods come from ModelWrap (binding/model_wrap.h).
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "binding/model_wrap.h"
#include "vae/vae_model.h"

namespace difftune {

class VaeWrap : public ModelWrap<VaeWrap, VaeModel> {
 public:
  static Napi::Function define(Napi::Env env);
  using ModelWrap::ModelWrap;
  // The live model behind a NativeAutoencoderKL argument (the VAE trainer's).
  static std::shared_ptr<VaeModel> modelArg(const Napi::Value& value, const std::string& param);

 private:
  friend ModelWrap;
  static constexpr const char* kClassName = "NativeAutoencoderKL";
  static constexpr const char* kModelName = "AutoencoderKL";
  static Napi::FunctionReference& constructor(AddonState& state) { return state.vaeConstructor; }
  static VaeConfig parseConfig(const Napi::Object& o);

  Napi::Value encode(const Napi::CallbackInfo& info);
  Napi::Value decode(const Napi::CallbackInfo& info);
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value decodeBackwardMse(const Napi::CallbackInfo& info);
};

}  // namespace difftune
