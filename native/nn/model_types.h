// The torch-free vocabulary every model facade (unet/unet_model.h, vae/vae_model.h,
// clip/clip_text_model.h), modelio/ and the N-API glue share: parameter listings, named tensors and
// what a training step's backward returns.
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

}  // namespace difftune
