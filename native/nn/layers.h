// torch.nn's layers as diffusers uses them, with torch.nn's parameter names and default init.
#pragma once

#include <ATen/core/Generator.h>

#include <memory>
#include <string>

#include "nn/lora.h"
#include "nn/module.h"

namespace difftune {

// Modules with parameters override reset() with torch.nn's default initialisation, so a model
// trained from scratch starts where a PyTorch user's would.
class Layer : public Module {
 public:
  virtual void reset(at::Generator& gen) = 0;
};

// Re-initialises every layer of a model (from-scratch training), in state-dict order.
void resetParameters(Module& model, at::Generator& gen);

class Conv2d : public Layer {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0, bool bias = true);
  at::Tensor forward(const at::Tensor& x) const;
  void reset(at::Generator& gen) override;
  int64_t in, out, kernel, stride, padding;
  at::Tensor& weight;
  at::Tensor* bias = nullptr;
  std::shared_ptr<LoraAdapter> lora;  // optional low-rank update (not a registered parameter)
};

class Linear : public Layer {
 public:
  Linear(int64_t in, int64_t out, bool bias = true);
  at::Tensor forward(const at::Tensor& x) const;
  void reset(at::Generator& gen) override;
  int64_t in, out;
  at::Tensor& weight;
  at::Tensor* bias = nullptr;
  std::shared_ptr<LoraAdapter> lora;  // optional low-rank update (not a registered parameter)
};

class GroupNorm : public Layer {
 public:
  GroupNorm(int64_t groups, int64_t channels, double eps, bool affine = true);
  at::Tensor forward(const at::Tensor& x) const;
  void reset(at::Generator& gen) override;
  int64_t groups, channels;
  double eps;
  at::Tensor* weight = nullptr;
  at::Tensor* bias = nullptr;
};

class LayerNorm : public Layer {
 public:
  LayerNorm(int64_t dim, double eps, bool affine = true);
  at::Tensor forward(const at::Tensor& x) const;
  void reset(at::Generator& gen) override;
  int64_t dim;
  double eps;
  at::Tensor* weight = nullptr;
  at::Tensor* bias = nullptr;
};

class Embedding : public Layer {
 public:
  Embedding(int64_t num, int64_t dim);
  at::Tensor forward(const at::Tensor& indices) const;
  void reset(at::Generator& gen) override;
  int64_t num, dim;
  at::Tensor& weight;
};

// diffusers' get_activation: "silu"/"swish", "mish", "gelu", "relu". Throws for anything else.
enum class Activation { SiLU, Mish, GELU, ReLU };
Activation parseActivation(const std::string& name, const std::string& where);
at::Tensor activate(Activation act, const at::Tensor& x);

// Dropout that is active only in training mode (nn.Dropout).
at::Tensor trainDropout(const at::Tensor& x, double p, bool training);

}  // namespace difftune
