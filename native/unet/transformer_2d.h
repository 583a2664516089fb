// Transformer2DModel for continuous (image) inputs (diffusers models/transformers/transformer_2d.py).
#pragma once

#include <memory>

#include "unet/attention.h"

namespace difftune {

struct Transformer2DOptions {
  int64_t heads = 16;
  int64_t dimHead = 88;
  int64_t inChannels = 0;
  int64_t numLayers = 1;
  double dropout = 0.0;
  int64_t normNumGroups = 32;
  int64_t crossAttentionDim = -1;
  bool attentionBias = false;
  std::string activationFn = "geglu";
  bool useLinearProjection = false;
  bool onlyCrossAttention = false;
  bool upcastAttention = false;
};

class Transformer2DModel : public Module {
 public:
  explicit Transformer2DModel(const Transformer2DOptions& o);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context) const;  // x: [B, C, H, W]
  Transformer2DOptions options;
  std::shared_ptr<GroupNorm> norm;
  std::shared_ptr<Conv2d> proj_in_conv, proj_out_conv;
  std::shared_ptr<Linear> proj_in_linear, proj_out_linear;
  std::shared_ptr<ModuleList<BasicTransformerBlock>> transformer_blocks;
};

}  // namespace difftune
