// The few tensor operations that pipeline code in TypeScript needs between model calls, so that
// TypeScript never does tensor math itself. Run them on the compute thread.
#pragma once

#include <vector>

#include "tensor/generator.h"
#include "tensor/tensor.h"

namespace difftune {

// torch.cat(tensors, dim).
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
// Standard-normal noise of `shape` (float32) on `device`, drawn on the CPU from `generator` when given
// (so a seed gives the same numbers on every device, as diffusers' randn_tensor with a CPU generator).
Tensor randn(const std::vector<int64_t>& shape, const std::string& device, const Generator* generator);
// Classifier-free guidance: (u, c) = output.chunk(2) along the batch; u + scale·(c − u).
Tensor classifierFreeGuidance(const Tensor& output, double scale);
// output · factor (latents to and from the VAE's scaled space).
Tensor scale(const Tensor& output, double factor);
// A draw from the VAE's diagonal Gaussian, times `factor`: (mean + exp(½·clamp(logvar, −30, 20))·noise)·factor.
Tensor gaussianSample(const Tensor& mean, const Tensor& logvar, const Tensor& noise, double factor);

}  // namespace difftune
