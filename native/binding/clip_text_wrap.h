// The JS handle on a CLIP text encoder (NativeCLIPTextModel). All model work runs on the compute
// thread; the handle holds a shared reference, so dispose() during a job in flight is safe.
#pragma once

#include <napi.h>

#include <memory>

#include "clip/clip_text_model.h"

namespace difftune {

class ClipTextWrap : public Napi::ObjectWrap<ClipTextWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit ClipTextWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  Napi::Value parameters(const Napi::CallbackInfo& info);
  Napi::Value loadStateDict(const Napi::CallbackInfo& info);
  Napi::Value stateDict(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value initialize(const Napi::CallbackInfo& info);
  Napi::Value encode(const Napi::CallbackInfo& info);
  Napi::Value forwardBackwardMse(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);

  std::shared_ptr<ClipTextModel> live() const;
  std::shared_ptr<ClipTextModel> model_;
};

}  // namespace difftune
