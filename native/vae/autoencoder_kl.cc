#include "vae/autoencoder_kl.h"

#include <ATen/ATen.h>

#include "tensor/failure.h"

namespace difftune {

namespace {

void checkConfig(const VaeConfig& c) {
  size_t n = c.blockOutChannels.size();
  if (n == 0) throw InvalidArgument("block_out_channels must not be empty");
  if (c.downBlockTypes.size() != n || c.upBlockTypes.size() != n)
    throw InvalidArgument("down_block_types (" + std::to_string(c.downBlockTypes.size()) + "), up_block_types (" +
                          std::to_string(c.upBlockTypes.size()) + ") and block_out_channels (" + std::to_string(n) +
                          ") must have the same length");
  for (const auto& t : c.downBlockTypes)
    if (t != "DownEncoderBlock2D") throw InvalidArgument("unsupported VAE down block type \"" + t + "\": expected DownEncoderBlock2D");
  for (const auto& t : c.upBlockTypes)
    if (t != "UpDecoderBlock2D") throw InvalidArgument("unsupported VAE up block type \"" + t + "\": expected UpDecoderBlock2D");
}

}  // namespace

Encoder::Encoder(const VaeConfig& c) {
  checkConfig(c);
  const auto& ch = c.blockOutChannels;
  conv_in = registerModule("conv_in", std::make_shared<Conv2d>(c.inChannels, ch[0], 3, 1, 1));
  down_blocks = registerModule("down_blocks", std::make_shared<ModuleList<DownEncoderBlock2D>>());
  for (size_t i = 0; i < ch.size(); ++i) {
    VaeBlockOptions o;
    o.inChannels = i == 0 ? ch[0] : ch[i - 1];
    o.outChannels = ch[i];
    o.numLayers = c.layersPerBlock;
    o.groups = c.normNumGroups;
    o.actFn = c.actFn;
    o.addSample = i + 1 < ch.size();
    down_blocks->push(std::make_shared<DownEncoderBlock2D>(o));
  }
  mid_block = registerModule("mid_block", vaeMidBlock(ch.back(), c.normNumGroups, c.actFn, c.midBlockAddAttention));
  conv_norm_out = registerModule("conv_norm_out", std::make_shared<GroupNorm>(c.normNumGroups, ch.back(), kVaeNormEps));
  conv_out = registerModule("conv_out", std::make_shared<Conv2d>(ch.back(), 2 * c.latentChannels, 3, 1, 1));  // double_z
}

at::Tensor Encoder::forward(const at::Tensor& xIn) const {
  at::Tensor x = conv_in->forward(xIn);
  for (auto& b : *down_blocks) x = b->forward(x);
  x = mid_block->forward(x, at::Tensor(), at::Tensor());
  // conv_act is SiLU whatever act_fn says (diffusers hard-codes it).
  return conv_out->forward(at::silu(conv_norm_out->forward(x)));
}

Decoder::Decoder(const VaeConfig& c) {
  checkConfig(c);
  std::vector<int64_t> ch(c.blockOutChannels.rbegin(), c.blockOutChannels.rend());
  conv_in = registerModule("conv_in", std::make_shared<Conv2d>(c.latentChannels, ch[0], 3, 1, 1));
  // diffusers registers up_blocks (empty) before the mid block: keep its key order.
  up_blocks = registerModule("up_blocks", std::make_shared<ModuleList<UpDecoderBlock2D>>());
  mid_block = registerModule("mid_block", vaeMidBlock(ch[0], c.normNumGroups, c.actFn, c.midBlockAddAttention));
  for (size_t i = 0; i < ch.size(); ++i) {
    VaeBlockOptions o;
    o.inChannels = i == 0 ? ch[0] : ch[i - 1];
    o.outChannels = ch[i];
    o.numLayers = c.layersPerBlock + 1;
    o.groups = c.normNumGroups;
    o.actFn = c.actFn;
    o.addSample = i + 1 < ch.size();
    up_blocks->push(std::make_shared<UpDecoderBlock2D>(o));
  }
  conv_norm_out = registerModule("conv_norm_out", std::make_shared<GroupNorm>(c.normNumGroups, ch.back(), kVaeNormEps));
  conv_out = registerModule("conv_out", std::make_shared<Conv2d>(ch.back(), c.outChannels, 3, 1, 1));
}

at::Tensor Decoder::forward(const at::Tensor& z) const {
  at::Tensor x = conv_in->forward(z);
  x = mid_block->forward(x, at::Tensor(), at::Tensor());
  for (auto& b : *up_blocks) x = b->forward(x);
  return conv_out->forward(at::silu(conv_norm_out->forward(x)));
}

AutoencoderKL::AutoencoderKL(const VaeConfig& c) : config(c) {
  encoder = registerModule("encoder", std::make_shared<Encoder>(c));
  decoder = registerModule("decoder", std::make_shared<Decoder>(c));
  if (c.useQuantConv)
    quant_conv = registerModule("quant_conv", std::make_shared<Conv2d>(2 * c.latentChannels, 2 * c.latentChannels, 1, 1, 0));
  if (c.usePostQuantConv)
    post_quant_conv = registerModule("post_quant_conv", std::make_shared<Conv2d>(c.latentChannels, c.latentChannels, 1, 1, 0));
}

std::pair<at::Tensor, at::Tensor> AutoencoderKL::encode(const at::Tensor& x) const {
  at::Tensor moments = encoder->forward(x);
  if (quant_conv) moments = quant_conv->forward(moments);
  auto parts = moments.chunk(2, 1);  // mean, logvar: [B, latent_channels, h, w] each
  return {parts[0], at::clamp(parts[1], -30.0, 20.0)};
}

at::Tensor AutoencoderKL::decode(const at::Tensor& z) const { return decoder->forward(post_quant_conv ? post_quant_conv->forward(z) : z); }

}  // namespace difftune
