#include "unet/attention_processor.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace difftune {

Attention::Attention(const AttentionOptions& o) : options(o), scale(1.0 / std::sqrt(static_cast<double>(o.dimHead))) {
  int64_t inner = o.heads * o.dimHead;
  int64_t kvDim = o.crossAttentionDim > 0 ? o.crossAttentionDim : o.queryDim;
  if (o.normNumGroups > 0) group_norm = registerModule("group_norm", std::make_shared<GroupNorm>(o.normNumGroups, o.queryDim, o.eps));
  to_q = registerModule("to_q", std::make_shared<Linear>(o.queryDim, inner, o.bias));
  to_k = registerModule("to_k", std::make_shared<Linear>(kvDim, inner, o.bias));
  to_v = registerModule("to_v", std::make_shared<Linear>(kvDim, inner, o.bias));
  to_out = registerModule("to_out", std::make_shared<ModuleList<Linear>>());
  to_out->push(std::make_shared<Linear>(inner, o.queryDim, o.outBias));
}

at::Tensor scaledDotProductAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale, bool upcast) {
#if TORCH_VERSION_MAJOR >= 2
  if (!upcast || q.scalar_type() == at::kFloat) {
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/false, scale);
  }
#endif
  at::ScalarType dtype = q.scalar_type();
  at::Tensor qq = upcast ? q.to(at::kFloat) : q;
  at::Tensor kk = upcast ? k.to(at::kFloat) : k;
  // diffusers' AttnProcessor: heads folded into the batch, baddbmm with alpha = scale (the scaling rides
  // in the GEMM instead of a separate pass over the scores, which dominate memory traffic at small head
  // sizes: mnist-small's 8 heads of 8 over 256 tokens), softmax, bmm. beta = 0, but the scores start as
  // zeros, not diffusers' torch.empty: for small products (contraction × rows × columns < 400, e.g.
  // self-attention over a 2×2 or 1×1 latent) libtorch 1.13's baddbmm neither copies its input nor skips
  // beta = 0, it computes out·0 + alpha·(q·kᵀ) on a fresh uninitialised `out`, so stale NaN bytes from the
  // allocator became NaN outputs now and then. In place on zeros every kernel reads only zeros; in timing
  // this was no slower than baddbmm on `empty`.
  int64_t b = q.size(0), heads = q.size(1), n = q.size(2), m = k.size(2), dv = v.size(3);
  at::Tensor q3 = qq.reshape({b * heads, n, qq.size(3)});  // [B·H, N, d]
  at::Tensor k3 = kk.reshape({b * heads, m, kk.size(3)});  // [B·H, M, d]
  at::Tensor v3 = v.reshape({b * heads, m, dv});           // [B·H, M, d]
  auto attend = [&](const at::Tensor& qc, const at::Tensor& kc, const at::Tensor& vc) {
    at::Tensor scores = at::zeros({qc.size(0), n, m}, qc.options())
                            .baddbmm_(qc, kc.transpose(1, 2), /*beta=*/0.0,
                                      /*alpha=*/scale);     // [G, N, M]
    return at::bmm(at::softmax(scores, -1).to(dtype), vc);  // [G, N, d]
  };
  // Groups of (batch, head) pairs whose scores fit in about 1 MB stay in cache from the GEMM through the
  // softmax to the second GEMM; one [B·H, N, M] tensor of scores would stream through memory three times.
  int64_t perPair = n * m * static_cast<int64_t>(qq.element_size());
  int64_t group = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(perPair, 1));
  if (group >= b * heads) return attend(q3, k3, v3).view({b, heads, n, dv});  // [B, H, N, d]
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < b * heads; i += group) {
    int64_t len = std::min(group, b * heads - i);
    parts.push_back(attend(q3.narrow(0, i, len), k3.narrow(0, i, len), v3.narrow(0, i, len)));
  }
  return at::cat(parts, 0).view({b, heads, n, dv});  // [B, H, N, d]
}

at::Tensor Attention::forward(const at::Tensor& xIn, const at::Tensor& context) const {
  const at::Tensor& residual = xIn;
  at::Tensor x = xIn;
  bool spatial = x.dim() == 4;
  int64_t b = x.size(0), c = 0, h = 0, w = 0;
  if (spatial) {
    c = x.size(1), h = x.size(2), w = x.size(3);
    x = x.view({b, c, h * w}).transpose(1, 2);  // [B, HW, C]
  }
  if (group_norm) x = group_norm->forward(x.transpose(1, 2)).transpose(1, 2);
  at::Tensor q = to_q->forward(x);
  const at::Tensor& kvIn = context.defined() ? context : x;
  at::Tensor k = to_k->forward(kvIn);
  at::Tensor v = to_v->forward(kvIn);
  int64_t heads = options.heads, d = options.dimHead;
  auto split = [&](const at::Tensor& t) { return t.view({b, -1, heads, d}).transpose(1, 2); };  // [B, H, N, d]
  at::Tensor out = scaledDotProductAttention(split(q), split(k), split(v), scale, options.upcastAttention || options.upcastSoftmax);
  out = out.transpose(1, 2).reshape({b, -1, heads * d}).to(q.scalar_type());  // [B, N, H·d]
  out = trainDropout((*to_out)[0].forward(out), options.dropout, training());
  if (spatial) out = out.transpose(-1, -2).reshape({b, c, h, w});
  if (options.residualConnection) out = out + residual;
  return options.rescaleOutputFactor == 1.0 ? out : out / options.rescaleOutputFactor;
}

}  // namespace difftune
