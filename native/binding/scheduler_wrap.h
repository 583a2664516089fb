// The JS Scheduler handle: one diffusers-style noise scheduler (with its multistep state) living on
// the compute thread. Every tensor operation is a Promise, queued in submission order.
#pragma once

#include <napi.h>

#include <memory>

#include "schedulers/scheduler.h"

namespace difftune {

class SchedulerWrap : public Napi::ObjectWrap<SchedulerWrap> {
 public:
  static Napi::Function define(Napi::Env env);

  // Only NativeScheduler.create() constructs these (the argument is an External).
  explicit SchedulerWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value setTimesteps(const Napi::CallbackInfo& info);
  Napi::Value schedule(const Napi::CallbackInfo& info);
  Napi::Value tables(const Napi::CallbackInfo& info);
  Napi::Value scaleInitialNoise(const Napi::CallbackInfo& info);
  Napi::Value scaleModelInput(const Napi::CallbackInfo& info);
  Napi::Value step(const Napi::CallbackInfo& info);
  Napi::Value addNoise(const Napi::CallbackInfo& info);
  Napi::Value getVelocity(const Napi::CallbackInfo& info);
  Napi::Value snr(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<Scheduler> live() const;

  std::shared_ptr<Scheduler> scheduler_;
};

}  // namespace difftune
