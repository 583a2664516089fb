// The torch-free vocabulary every model facade (unet/unet_model.h, vae/vae_model.h,
// clip/clip_text_model.h), modelio/ and the N-API glue share: parameter listings, named tensors and
// what a training step's backward returns, LoRA adapters' options and weights.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace difftune {

struct ParameterInfo {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
  bool requiresGrad;
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What every model's forward-backward-MSE hands back (modelio's forwardBackwardMse): the output, the
// float32 loss and the parameters' gradients. A model adds the gradients of its own inputs.
struct MseBackwardResult {
  Tensor output, loss;
  NamedTensors gradParams;
};

// Fresh adapters (nn/lora.h addLoraAdapters).
struct LoraOptions {
  std::vector<std::string> targets;  // module paths of Linear / Conv2d layers
  int64_t rank = 4;
  double alpha = 4;
  double dropout = 0;
  std::string init = "kaiming";  // PEFT's default: A kaiming-uniform, B zero; "gaussian": A ~ N(0, 1/rank)
  uint64_t seed = 0;
};

// One adapter's weights: A is lora_A (lora_down), B is lora_B (lora_up).
struct LoraEntry {
  std::string module;
  Tensor A, B;
  double alpha = 0;
};

}  // namespace difftune
