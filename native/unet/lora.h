// LoRA adapters (Hu et al. 2021, PEFT's layout): a frozen layer W plus a low-rank update
// y = W·x + (alpha / rank)·B(A(dropout(x))). A is [rank, in] (for convolutions [rank, in, k, k] with the
// base layer's stride and padding), B is [out, rank] ([out, rank, 1, 1]). They live outside the module
// registry, so the model's named parameters stay exactly diffusers' base state dict.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace difftune {

struct LoraAdapter {
  int64_t rank = 4;
  double alpha = 4;
  double dropout = 0;
  at::Tensor A, B;  // lora_A.weight, lora_B.weight
  // Conv2d targets: the base layer's geometry.
  bool conv = false;
  int64_t kernel = 1, stride = 1, padding = 0;

  double scale() const { return alpha / static_cast<double>(rank); }
  // The adapter's contribution for input x (what the base layer adds it to).
  at::Tensor delta(const at::Tensor& x, bool training) const;
  // scale·B·A as a weight of the base layer's shape (for merging).
  at::Tensor mergedWeight() const;
};

}  // namespace difftune
