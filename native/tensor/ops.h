// The few tensor operations that pipeline code in TypeScript needs between model calls, so that
// TypeScript never does tensor math itself. Run them on the compute thread.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace difftune {

// torch.cat(tensors, dim).
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
// Classifier-free guidance: (u, c) = output.chunk(2) along the batch; u + scale·(c − u).
Tensor classifierFreeGuidance(const Tensor& output, double scale);

}  // namespace difftune
