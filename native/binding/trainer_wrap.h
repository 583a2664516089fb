// The JS handle on a training session (NativeTrainer): the optimizer, EMA and step over one U-Net.
#pragma once

#include <napi.h>

#include <memory>

#include "train/trainer.h"

namespace difftune {

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit TrainerWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  Napi::Value accumulate(const Napi::CallbackInfo& info);
  Napi::Value step(const Napi::CallbackInfo& info);
  Napi::Value validationLoss(const Napi::CallbackInfo& info);
  Napi::Value optimizerState(const Napi::CallbackInfo& info);
  Napi::Value loadOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value emaWeights(const Napi::CallbackInfo& info);
  Napi::Value loadEmaWeights(const Napi::CallbackInfo& info);
  Napi::Value counters(const Napi::CallbackInfo& info);
  Napi::Value setLossScale(const Napi::CallbackInfo& info);
  Napi::Value setProcessGroup(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);

  std::shared_ptr<Trainer> live() const;
  std::shared_ptr<Trainer> trainer_;
};

}  // namespace difftune
