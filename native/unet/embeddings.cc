#include "unet/embeddings.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "tensor/failure.h"

namespace difftune {

at::Tensor timestepEmbedding(const at::Tensor& timesteps, int64_t dim, bool flipSinToCos, double downscaleFreqShift, double scale,
                             double maxPeriod) {
  if (timesteps.dim() != 1) throw InvalidArgument("Timesteps should be a 1d-array");
  int64_t half = dim / 2;
  // As diffusers: the exponent in float32 on the timesteps' device, then exp, then the outer product.
  at::Tensor exponent =
      at::arange(0, half, at::TensorOptions().dtype(at::kFloat).device(timesteps.device())) * static_cast<float>(-std::log(maxPeriod));
  exponent = exponent / (static_cast<double>(half) - downscaleFreqShift);
  at::Tensor freqs = at::exp(exponent);
  at::Tensor emb = timesteps.unsqueeze(1).to(at::kFloat) * freqs.unsqueeze(0);  // [N, half]
  emb = emb * scale;
  emb = at::cat({at::sin(emb), at::cos(emb)}, -1);
  if (flipSinToCos) emb = at::cat({emb.slice(1, half), emb.slice(1, 0, half)}, -1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1, 0, 0});
  return emb;
}

GaussianFourierProjection::GaussianFourierProjection(int64_t embeddingSize, double scale, bool log, bool flipSinToCos)
    : scale(scale), log(log), flipSinToCos(flipSinToCos), weight(registerParameter("weight", at::zeros({embeddingSize}))) {}

at::Tensor GaussianFourierProjection::forward(const at::Tensor& x) const {
  at::Tensor v = log ? at::log(x) : x;
  at::Tensor proj = v.unsqueeze(1) * weight.unsqueeze(0) * 2 * M_PI;
  return flipSinToCos ? at::cat({at::cos(proj), at::sin(proj)}, -1) : at::cat({at::sin(proj), at::cos(proj)}, -1);
}

void GaussianFourierProjection::reset(at::Generator& gen) {
  at::NoGradGuard noGrad;
  weight.normal_(0.0, 1.0, gen).mul_(scale);
}

TimestepEmbedding::TimestepEmbedding(int64_t in, int64_t timeEmbedDim, const std::string& actFn, int64_t outDim,
                                     const std::string& postActFn)
    : act(parseActivation(actFn, "act_fn")) {
  linear_1 = registerModule("linear_1", std::make_shared<Linear>(in, timeEmbedDim));
  linear_2 = registerModule("linear_2", std::make_shared<Linear>(timeEmbedDim, outDim > 0 ? outDim : timeEmbedDim));
  if (!postActFn.empty()) postAct = parseActivation(postActFn, "timestep_post_act");
}

at::Tensor TimestepEmbedding::forward(const at::Tensor& sample) const {
  at::Tensor h = linear_2->forward(activate(act, linear_1->forward(sample)));
  return postAct ? activate(*postAct, h) : h;
}

}  // namespace difftune
