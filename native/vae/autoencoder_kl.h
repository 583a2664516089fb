// AutoencoderKL (diffusers models/autoencoders/autoencoder_kl.py and vae.py): Encoder, Decoder and the
// 1×1 quant convs, with diffusers' module names so that parameters are the checkpoint's keys.
#pragma once

#include <memory>

#include "vae/vae_blocks.h"
#include "vae/vae_config.h"

namespace difftune {

class Encoder : public Module {
 public:
  explicit Encoder(const VaeConfig& c);
  // [B, in_channels, H, W] → moments [B, 2·latent_channels, H/f, W/f]
  at::Tensor forward(const at::Tensor& x) const;
  std::shared_ptr<Conv2d> conv_in, conv_out;
  std::shared_ptr<ModuleList<DownEncoderBlock2D>> down_blocks;
  std::shared_ptr<MidBlock> mid_block;
  std::shared_ptr<GroupNorm> conv_norm_out;
};

class Decoder : public Module {
 public:
  explicit Decoder(const VaeConfig& c);
  // [B, latent_channels, h, w] → [B, out_channels, h·f, w·f]
  at::Tensor forward(const at::Tensor& z) const;
  std::shared_ptr<Conv2d> conv_in, conv_out;
  std::shared_ptr<ModuleList<UpDecoderBlock2D>> up_blocks;
  std::shared_ptr<MidBlock> mid_block;
  std::shared_ptr<GroupNorm> conv_norm_out;
};

class AutoencoderKL : public Module {
 public:
  explicit AutoencoderKL(const VaeConfig& c);
  // moments = quant_conv(encoder(x)), split into (mean, logvar) with logvar clamped to [-30, 20].
  std::pair<at::Tensor, at::Tensor> encode(const at::Tensor& x) const;
  // quant_conv(encoder(x)): [B, 2·latent_channels, h, w].
  at::Tensor encodeMoments(const at::Tensor& x) const;
  // DiagonalGaussianDistribution's (mean, logvar) of moments, logvar clamped to [-30, 20].
  static std::pair<at::Tensor, at::Tensor> splitMoments(const at::Tensor& moments);
  // decoder(post_quant_conv(z)), z in the VAE's own scale (latents / scaling_factor).
  at::Tensor decode(const at::Tensor& z) const;
  // diffusers' _tiled_encode (the moments) and tiled_decode: overlapping tiles of tiling.tileSampleSize
  // pixels / tiling.tileLatentSize latents, each through the encoder or decoder alone, blended linearly
  // with the tile above and the one to the left (blend_v, blend_h) and cropped.
  at::Tensor tiledEncodeMoments(const at::Tensor& x, const VaeTiling& tiling) const;
  at::Tensor tiledDecode(const at::Tensor& z, const VaeTiling& tiling) const;

  const VaeConfig config;
  std::shared_ptr<Encoder> encoder;
  std::shared_ptr<Decoder> decoder;
  std::shared_ptr<Conv2d> quant_conv, post_quant_conv;
};

}  // namespace difftune
