// The VAE's blocks (diffusers models/unets/unet_2d_blocks.py): DownEncoderBlock2D, UpDecoderBlock2D and
// the mid block, built from the U-Net's ResnetBlock2D / Downsample2D / Upsample2D / UNetMidBlock2D
// without time embedding. GroupNorm eps is 1e-6 throughout (diffusers hard-codes it for the VAE).
#pragma once

#include <memory>
#include <string>

#include "unet/resnet.h"
#include "unet/unet_2d_blocks.h"

namespace difftune {

constexpr double kVaeNormEps = 1e-6;

struct VaeBlockOptions {
  int64_t inChannels = 0;
  int64_t outChannels = 0;
  int64_t numLayers = 1;
  int64_t groups = 32;
  std::string actFn = "silu";
  bool addSample = true;  // add_downsample / add_upsample
};

// resnets, then a downsampler that pads (0, 1, 0, 1) and applies a 3×3 stride-2 conv without padding.
class DownEncoderBlock2D : public Module {
 public:
  explicit DownEncoderBlock2D(const VaeBlockOptions& o);
  at::Tensor forward(const at::Tensor& x) const;
  std::shared_ptr<ModuleList<ResnetBlock2D>> resnets;
  std::shared_ptr<ModuleList<Downsample2D>> downsamplers;
};

// resnets (no skip connections), then nearest ×2 upsampling and a 3×3 conv.
class UpDecoderBlock2D : public Module {
 public:
  explicit UpDecoderBlock2D(const VaeBlockOptions& o);
  at::Tensor forward(const at::Tensor& x) const;
  std::shared_ptr<ModuleList<ResnetBlock2D>> resnets;
  std::shared_ptr<ModuleList<Upsample2D>> upsamplers;
};

// UNetMidBlock2D as the VAE builds it: resnet, single-head attention over all channels (GroupNorm in
// front, residual), resnet; no time embedding.
std::shared_ptr<MidBlock> vaeMidBlock(int64_t channels, int64_t groups, const std::string& actFn, bool addAttention);

}  // namespace difftune
