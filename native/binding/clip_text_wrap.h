// The JS handle on a CLIP text encoder (NativeCLIPTextModel). All model work runs on the compute
// thread; the common model methods come from ModelWrap (binding/model_wrap.h).
#pragma once

#include <napi.h>

#include "binding/model_wrap.h"
#include "clip/clip_text_model.h"

namespace difftune {

class ClipTextWrap : public ModelWrap<ClipTextWrap, ClipTextModel> {
 public:
  static Napi::Function define(Napi::Env env);
  using ModelWrap::ModelWrap;
  // The model behind a NativeCLIPTextModel argument (the trainer's conditioning model); `param` names it in errors.
  static std::shared_ptr<ClipTextModel> modelArg(const Napi::Value& value, const std::string& param);

 private:
  friend ModelWrap;
  static constexpr const char* kClassName = "NativeCLIPTextModel";
  static constexpr const char* kModelName = "CLIPTextModel";
  static Napi::FunctionReference& constructor(AddonState& state) { return state.clipTextConstructor; }
  static ClipTextConfig parseConfig(const Napi::Object& o);

  Napi::Value encode(const Napi::CallbackInfo& info);
  Napi::Value forwardBackwardMse(const Napi::CallbackInfo& info);
  Napi::Value addLora(const Napi::CallbackInfo& info);
  Napi::Value setLora(const Napi::CallbackInfo& info);
  Napi::Value loraEntries(const Napi::CallbackInfo& info);
  Napi::Value mergeLora(const Napi::CallbackInfo& info);
  Napi::Value removeLora(const Napi::CallbackInfo& info);
  Napi::Value appendTokenEmbeddings(const Napi::CallbackInfo& info);
  Napi::Value setOptions(const Napi::CallbackInfo& info);
};

}  // namespace difftune
