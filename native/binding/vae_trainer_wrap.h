// The JS handle on a VAE training session (NativeVaeTrainer): AdamW over every parameter of one
// AutoencoderKL, its steps, gradients and held-out measures, each run on the compute thread.
#pragma once

#include <napi.h>

#include <memory>

#include "train/vae_trainer.h"

namespace difftune {

class VaeTrainerWrap : public Napi::ObjectWrap<VaeTrainerWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit VaeTrainerWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  Napi::Value step(const Napi::CallbackInfo& info);
  Napi::Value gradients(const Napi::CallbackInfo& info);
  Napi::Value evaluate(const Napi::CallbackInfo& info);
  Napi::Value optimizerSteps(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);

  std::shared_ptr<VaeTrainer> live() const;
  std::shared_ptr<VaeTrainer> trainer_;
};

}  // namespace difftune
