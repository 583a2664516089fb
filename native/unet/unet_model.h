// A torch-free facade over UNet for the N-API glue: tensors cross as difftune::Tensor, so the
// binding files never include torch headers. Every method may be slow: call them on the compute thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/model_types.h"
#include "tensor/tensor.h"
#include "unet/unet_config.h"

namespace difftune {

class UNet;
}  // namespace difftune
namespace at {
class Tensor;
}  // namespace at
namespace difftune {

struct ForwardInputs {
  Tensor sample, timestep, context, classLabels;  // context / classLabels may be undefined
};

struct UNetRuntimeOptions {
  bool gradientCheckpointing = false;
  bool channelsLast = false;
  bool autocast = false;
  DType autocastDtype = DType::BFloat16;
};

struct BackwardResult : MseBackwardResult {
  Tensor gradSample, gradContext;
};

class UNetModel {
 public:
  explicit UNetModel(const UNetConfig& config);
  ~UNetModel();

  std::vector<ParameterInfo> parameters() const;
  // Copies every weight in (converting dtype/device to the model's). Strict: one error lists every
  // missing, unexpected and wrongly shaped tensor; nothing is changed unless all of them match.
  void loadStateDict(const NamedTensors& weights, const std::string& source);
  // loadStateDict in two halves, for weights streamed from a file one tensor at a time: the whole set's
  // check from names, shapes and dtypes, then copies of some tensors each (see checkModuleStateDict).
  void checkStateDict(const std::vector<ParameterInfo>& weights, const std::string& source) const;
  void copyWeights(const NamedTensors& weights, const std::string& source);
  // Private copies of the parameters, in diffusers' key order.
  NamedTensors stateDict() const;
  void to(const std::string& device, DType dtype);
  // torch.nn default initialisation from a seed (training from scratch).
  void initialize(uint64_t seed);
  void setTraining(bool on);
  void setOptions(const UNetRuntimeOptions& options);

  // LoRA adapters on Linear/Conv2d layers (the base weights are untouched until mergeLora).
  void addLora(const LoraOptions& options);
  // Installs adapters with given weights (loading a LoRA file); replaces existing ones on those modules.
  void setLora(const std::vector<LoraEntry>& entries, double dropout);
  // (module, A, B, alpha) of every adapter, as copies.
  std::vector<LoraEntry> loraEntries() const;
  // Folds every adapter into its base weight (W += alpha/rank·B·A) and removes the adapters.
  void mergeLora();
  void removeLora();
  // Visits base parameters, then adapters' "<module>.lora_A.weight" / ".lora_B.weight" (the trainer's slots).
  void forEachSlot(const std::function<void(const std::string&, at::Tensor&)>& fn);

  Tensor forward(const ForwardInputs& in) const;
  // loss = mean((unet(in) − target)²); backward; returns the gradients asked for (all when `names` is empty).
  BackwardResult forwardBackwardMse(const ForwardInputs& in, const Tensor& target, const std::vector<std::string>& names);

  std::string device() const;
  DType dtype() const;
  // The module tree, for the trainer (which lives in native/ too and includes unet.h itself).
  UNet& unet() { return *unet_; }
  const UNetRuntimeOptions& options() const { return options_; }
  // A Trainer holds the addresses of the parameter slots it updates: while one is attached, changes
  // that would free or replace slots (adding, loading, merging or removing LoRA adapters) are refused.
  void attachTrainer() { ++trainers_; }
  void detachTrainer() { --trainers_; }

 private:
  std::unique_ptr<UNet> unet_;
  UNetRuntimeOptions options_;
  std::atomic<int> trainers_{0};
  void requireNoTrainer(const char* what) const;
};

}  // namespace difftune
