// Image batches as the model takes them: decoded pixels arrive from TypeScript as one uint8 NHWC
// buffer per batch and leave as one float32 NCHW tensor in [-1, 1]. Run on the compute thread.
#pragma once

#include "tensor/tensor.h"

namespace difftune {

// images: uint8 [N, H, W, C] → float32 [N, C, H, W], x / 127.5 − 1 (diffusers' Normalize([0.5], [0.5])).
Tensor imagesToFloat(const Tensor& images);

}  // namespace difftune
