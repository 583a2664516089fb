// The torch-free vocabulary every model facade (unet/unet_model.h, vae/vae_model.h,
// clip/clip_text_model.h), modelio/ and the N-API glue share: parameter listings and named tensors.
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

}  // namespace difftune
