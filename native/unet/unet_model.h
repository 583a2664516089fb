// A torch-free facade over UNet for the N-API glue: tensors cross as difftune::Tensor, so the
// binding files never include torch headers. Every method may be slow: call them on the compute thread.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"
#include "unet/unet_config.h"

namespace difftune {

class UNet;

struct ParameterInfo {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
  bool requiresGrad;
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct ForwardInputs {
  Tensor sample, timestep, context, classLabels;  // context / classLabels may be undefined
};

struct UNetRuntimeOptions {
  bool gradientCheckpointing = false;
  bool channelsLast = false;
  bool autocast = false;
  DType autocastDtype = DType::BFloat16;
};

struct BackwardResult {
  Tensor output, loss, gradSample, gradContext;
  NamedTensors gradParams;
};

class UNetModel {
 public:
  explicit UNetModel(const UNetConfig& config);
  ~UNetModel();

  std::vector<ParameterInfo> parameters() const;
  // Copies every weight in (converting dtype/device to the model's). Strict: one error lists every
  // missing, unexpected and wrongly shaped tensor; nothing is changed unless all of them match.
  void loadStateDict(const NamedTensors& weights, const std::string& source);
  // Private copies of the parameters, in diffusers' key order.
  NamedTensors stateDict() const;
  void to(const std::string& device, DType dtype);
  // torch.nn default initialisation from a seed (training from scratch).
  void initialize(uint64_t seed);
  void setTraining(bool on);
  void setOptions(const UNetRuntimeOptions& options);

  Tensor forward(const ForwardInputs& in) const;
  // loss = mean((unet(in) − target)²); backward; returns the gradients asked for (all when `names` is empty).
  BackwardResult forwardBackwardMse(const ForwardInputs& in, const Tensor& target, const std::vector<std::string>& names);

  std::string device() const;
  DType dtype() const;
  // The module tree, for the trainer (which lives in native/ too and includes unet.h itself).
  UNet& unet() { return *unet_; }
  const UNetRuntimeOptions& options() const { return options_; }

 private:
  std::unique_ptr<UNet> unet_;
  UNetRuntimeOptions options_;
};

}  // namespace difftune
