// BasicTransformerBlock and FeedForward (diffusers models/attention.py, activations.py).
#pragma once

#include <memory>
#include <string>

#include "unet/attention_processor.h"

namespace difftune {

// GEGLU / GELU / GELU(tanh) projections: the first layer of the feed-forward.
class GeluProjection : public Module {
 public:
  GeluProjection(int64_t dimIn, int64_t dimOut, const std::string& kind);  // "geglu" | "gelu" | "gelu-approximate"
  at::Tensor forward(const at::Tensor& x) const;
  std::string kind;
  std::shared_ptr<Linear> proj;
};

class FeedForward : public Module {
 public:
  FeedForward(int64_t dim, const std::string& activationFn, double dropout, int64_t mult = 4);
  at::Tensor forward(const at::Tensor& x) const;
  double dropoutP;
  std::shared_ptr<GeluProjection> act;  // net.0
  std::shared_ptr<Linear> out;          // net.2
  std::shared_ptr<Module> net;
};

struct TransformerBlockOptions {
  int64_t dim = 0;
  int64_t heads = 8;
  int64_t dimHead = 64;
  double dropout = 0.0;
  int64_t crossAttentionDim = -1;
  std::string activationFn = "geglu";
  bool attentionBias = false;
  bool onlyCrossAttention = false;
  bool upcastAttention = false;
  double normEps = 1e-5;
  bool normElementwiseAffine = true;
};

class BasicTransformerBlock : public Module {
 public:
  explicit BasicTransformerBlock(const TransformerBlockOptions& o);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context) const;  // x: [B, N, C]
  TransformerBlockOptions options;
  std::shared_ptr<LayerNorm> norm1, norm2, norm3;
  std::shared_ptr<Attention> attn1, attn2;
  std::shared_ptr<FeedForward> ff;
};

}  // namespace difftune
