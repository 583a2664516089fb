#include "unet/attention.h"

#include <ATen/ATen.h>

#include "tensor/failure.h"

namespace difftune {

namespace {
// FeedForward.net: [GEGLU, Dropout, Linear] — a list whose index 1 holds no parameters.
class FeedForwardNet : public Module {
 public:
  FeedForwardNet(std::shared_ptr<GeluProjection> act, std::shared_ptr<Linear> out) {
    registerModule("0", std::move(act));
    registerModule("2", std::move(out));
  }
};
}  // namespace

GeluProjection::GeluProjection(int64_t dimIn, int64_t dimOut, const std::string& kind) : kind(kind) {
  if (kind != "geglu" && kind != "gelu" && kind != "gelu-approximate")
    throw InvalidArgument("Expected \"geglu\", \"gelu\" or \"gelu-approximate\" for activation_fn but received \"" + kind + "\"");
  proj = registerModule("proj", std::make_shared<Linear>(dimIn, kind == "geglu" ? dimOut * 2 : dimOut));
}

at::Tensor GeluProjection::forward(const at::Tensor& x) const {
  at::Tensor h = proj->forward(x);
  if (kind == "geglu") {
    auto parts = h.chunk(2, -1);
    return parts[0] * at::gelu(parts[1]);
  }
  return at::gelu(h, kind == "gelu-approximate" ? "tanh" : "none");
}

FeedForward::FeedForward(int64_t dim, const std::string& activationFn, double dropout, int64_t mult) : dropoutP(dropout) {
  int64_t inner = dim * mult;
  act = std::make_shared<GeluProjection>(dim, inner, activationFn);
  out = std::make_shared<Linear>(inner, dim);
  net = registerModule("net", std::make_shared<FeedForwardNet>(act, out));
}

at::Tensor FeedForward::forward(const at::Tensor& x) const { return out->forward(trainDropout(act->forward(x), dropoutP, training())); }

BasicTransformerBlock::BasicTransformerBlock(const TransformerBlockOptions& o) : options(o) {
  norm1 = registerModule("norm1", std::make_shared<LayerNorm>(o.dim, o.normEps, o.normElementwiseAffine));
  AttentionOptions a1;
  a1.queryDim = o.dim;
  a1.heads = o.heads;
  a1.dimHead = o.dimHead;
  a1.dropout = o.dropout;
  a1.bias = o.attentionBias;
  a1.crossAttentionDim = o.onlyCrossAttention ? o.crossAttentionDim : -1;
  a1.upcastAttention = o.upcastAttention;
  attn1 = registerModule("attn1", std::make_shared<Attention>(a1));
  if (o.crossAttentionDim > 0) {
    norm2 = registerModule("norm2", std::make_shared<LayerNorm>(o.dim, o.normEps, o.normElementwiseAffine));
    AttentionOptions a2 = a1;
    a2.crossAttentionDim = o.crossAttentionDim;
    attn2 = registerModule("attn2", std::make_shared<Attention>(a2));
  }
  norm3 = registerModule("norm3", std::make_shared<LayerNorm>(o.dim, o.normEps, o.normElementwiseAffine));
  ff = registerModule("ff", std::make_shared<FeedForward>(o.dim, o.activationFn, o.dropout));
}

at::Tensor BasicTransformerBlock::forward(const at::Tensor& xIn, const at::Tensor& context) const {
  at::Tensor x = xIn;
  x = attn1->forward(norm1->forward(x), options.onlyCrossAttention ? context : at::Tensor()) + x;
  if (attn2) x = attn2->forward(norm2->forward(x), context) + x;
  return ff->forward(norm3->forward(x)) + x;
}

}  // namespace difftune
