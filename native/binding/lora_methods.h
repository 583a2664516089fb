// The LoRA methods of the model handles with adapters (NativeUNet, NativeCLIPTextModel), written once:
// argument checks, the job on the compute thread and the results. Model provides addLora, setLora,
// loraEntries, mergeLora and removeLora (nn/lora.h's adapters). Call them inside the handle's boundary.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "binding/addon_state.h"
#include "binding/args.h"
#include "nn/model_types.h"

namespace difftune {

// { targets, rank, alpha, dropout, init, seed } → LoraOptions ("lora.<field>" in errors).
LoraOptions parseLoraOptions(const Napi::Value& value);
// [{ module, A, B, alpha }, ...] → entries ("entries[i].<field>" in errors).
std::vector<LoraEntry> parseLoraEntries(const Napi::Value& value);
Napi::Value loraEntriesToJs(Napi::Env env, std::vector<LoraEntry>& entries);

// addLora(options)
template <typename Model>
Napi::Value addLoraMethod(const Napi::CallbackInfo& info, std::shared_ptr<Model> model) {
  LoraOptions opts = parseLoraOptions(argAt(info, 0));
  return addonState(info.Env()).compute->runVoid(info.Env(), [model, opts] { model->addLora(opts); });
}

// setLora(entries, dropout)
template <typename Model>
Napi::Value setLoraMethod(const Napi::CallbackInfo& info, std::shared_ptr<Model> model) {
  std::vector<LoraEntry> entries = parseLoraEntries(argAt(info, 0));
  Napi::Value d = argAt(info, 1);
  if (!d.IsNumber()) failArg("a number", "dropout", d);
  double dropout = d.As<Napi::Number>().DoubleValue();
  return addonState(info.Env()).compute->runVoid(info.Env(), [model, entries, dropout] { model->setLora(entries, dropout); });
}

// loraEntries() → [{ module, A, B, alpha }, ...]
template <typename Model>
Napi::Value loraEntriesMethod(const Napi::CallbackInfo& info, std::shared_ptr<Model> model) {
  Napi::Env env = info.Env();
  return addonState(env).compute->run(
      env, [model] { return model->loraEntries(); }, loraEntriesToJs);
}

// mergeLora()
template <typename Model>
Napi::Value mergeLoraMethod(const Napi::CallbackInfo& info, std::shared_ptr<Model> model) {
  return addonState(info.Env()).compute->runVoid(info.Env(), [model] { model->mergeLora(); });
}

// removeLora()
template <typename Model>
Napi::Value removeLoraMethod(const Napi::CallbackInfo& info, std::shared_ptr<Model> model) {
  return addonState(info.Env()).compute->runVoid(info.Env(), [model] { model->removeLora(); });
}

}  // namespace difftune
