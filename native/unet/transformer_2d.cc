#include "unet/transformer_2d.h"

#include <ATen/ATen.h>

namespace difftune {

Transformer2DModel::Transformer2DModel(const Transformer2DOptions& o) : options(o) {
  int64_t inner = o.heads * o.dimHead;
  norm = registerModule("norm", std::make_shared<GroupNorm>(o.normNumGroups, o.inChannels, 1e-6));
  if (o.useLinearProjection)
    proj_in_linear = registerModule("proj_in", std::make_shared<Linear>(o.inChannels, inner));
  else
    proj_in_conv = registerModule("proj_in", std::make_shared<Conv2d>(o.inChannels, inner, 1, 1, 0));
  transformer_blocks = registerModule("transformer_blocks", std::make_shared<ModuleList<BasicTransformerBlock>>());
  for (int64_t i = 0; i < o.numLayers; ++i) {
    TransformerBlockOptions b;
    b.dim = inner;
    b.heads = o.heads;
    b.dimHead = o.dimHead;
    b.dropout = o.dropout;
    b.crossAttentionDim = o.crossAttentionDim;
    b.activationFn = o.activationFn;
    b.attentionBias = o.attentionBias;
    b.onlyCrossAttention = o.onlyCrossAttention;
    b.upcastAttention = o.upcastAttention;
    transformer_blocks->push(std::make_shared<BasicTransformerBlock>(b));
  }
  if (o.useLinearProjection)
    proj_out_linear = registerModule("proj_out", std::make_shared<Linear>(inner, o.inChannels));
  else
    proj_out_conv = registerModule("proj_out", std::make_shared<Conv2d>(inner, o.inChannels, 1, 1, 0));
}

at::Tensor Transformer2DModel::forward(const at::Tensor& x, const at::Tensor& context) const {
  int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  at::Tensor hs = norm->forward(x);
  if (proj_in_conv) hs = proj_in_conv->forward(hs);
  int64_t inner = hs.size(1);
  hs = hs.permute({0, 2, 3, 1}).reshape({b, h * w, inner});  // [B, HW, C]
  if (proj_in_linear) {
    hs = proj_in_linear->forward(hs);
    inner = hs.size(2);
  }
  for (auto& block : *transformer_blocks) hs = block->forward(hs, context);
  if (proj_out_linear) hs = proj_out_linear->forward(hs);
  int64_t outC = hs.size(2);
  hs = hs.reshape({b, h, w, outC}).permute({0, 3, 1, 2}).contiguous();  // [B, C, H, W]
  if (proj_out_conv) hs = proj_out_conv->forward(hs);
  return hs + x;
}

}  // namespace difftune
