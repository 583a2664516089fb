// Image batches as the model takes them: decoded pixels arrive from TypeScript as one uint8 NHWC
// buffer per batch and leave as one float32 NCHW tensor in [-1, 1].
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace difftune {

// pixels: uint8 [N, H, W, C] (row-major) → float32 [N, C, H, W], x / 127.5 − 1 (diffusers'
// Normalize([0.5], [0.5])). A plain loop, no ATen kernels: safe on any thread, so the loader converts a
// batch on a libuv worker while the compute thread runs the previous step.
Tensor imagesToFloat(const std::vector<uint8_t>& pixels, const std::vector<int64_t>& shape);

}  // namespace difftune
