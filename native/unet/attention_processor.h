// diffusers' Attention module (models/attention_processor.py) with the default processor:
// scaled_dot_product_attention on libtorch >= 2.0, the same math spelled out on 1.13.
#pragma once

#include <memory>

#include "nn/layers.h"

namespace difftune {

struct AttentionOptions {
  int64_t queryDim = 0;
  int64_t crossAttentionDim = -1;  // -1: self-attention (keys/values from the query input)
  int64_t heads = 8;
  int64_t dimHead = 64;
  double dropout = 0.0;
  bool bias = false;
  bool upcastAttention = false;
  bool upcastSoftmax = false;
  bool outBias = true;
  int64_t normNumGroups = -1;  // > 0: a GroupNorm on the input (the UNet2DModel attention blocks)
  double eps = 1e-5;
  double rescaleOutputFactor = 1.0;
  bool residualConnection = false;
};

class Attention : public Module {
 public:
  explicit Attention(const AttentionOptions& o);
  // x: [B, C, H, W] or [B, N, C]; context: [B, M, D] or undefined (self-attention).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context = at::Tensor()) const;

  AttentionOptions options;
  double scale;
  std::shared_ptr<GroupNorm> group_norm;
  std::shared_ptr<Linear> to_q, to_k, to_v;
  std::shared_ptr<ModuleList<Linear>> to_out;
};

// softmax(q·kᵀ·scale)·v over heads: q [B, H, N, d], k/v [B, H, M, d] → [B, H, N, d].
at::Tensor scaledDotProductAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale, bool upcast);

}  // namespace difftune
