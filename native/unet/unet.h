// UNet2DModel and UNet2DConditionModel (diffusers models/unets/unet_2d.py and unet_2d_condition.py):
// one implementation, since the two share their skeleton; UNetConfig::conditional selects the
// differences (time-embedding activation, cross-attention, class-embedding MLP activation, conv_act).
#pragma once

#include <memory>
#include <optional>

#include "unet/embeddings.h"
#include "unet/unet_2d_blocks.h"
#include "unet/unet_config.h"

namespace difftune {

class UNet : public Module {
 public:
  explicit UNet(const UNetConfig& config);
  // sample [B, C, H, W]; timestep 0-d or [B] or [1] (int or float); context [B, M, D] for conditional
  // models; classLabels [B] int64 for class-conditional models.
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context, const at::Tensor& classLabels) const;

  const UNetConfig config;
  // Recompute each block's activations in backward instead of keeping them (memory for time).
  bool gradientCheckpointing = false;
  // NHWC activations and conv weights (faster convolutions on some CPUs and on tensor cores).
  bool channelsLast = false;
  int64_t timeEmbedDim = 0;
  std::shared_ptr<Conv2d> conv_in, conv_out;
  std::shared_ptr<Timesteps> time_proj_sinusoidal;
  std::shared_ptr<GaussianFourierProjection> time_proj_fourier;
  std::shared_ptr<TimestepEmbedding> time_embedding;
  std::shared_ptr<Embedding> class_embedding_table;
  std::shared_ptr<TimestepEmbedding> class_embedding_mlp;
  std::shared_ptr<ModuleList<DownBlock>> down_blocks;
  std::shared_ptr<MidBlock> mid_block;
  std::shared_ptr<ModuleList<UpBlock>> up_blocks;
  std::shared_ptr<GroupNorm> conv_norm_out;
  Activation convAct = Activation::SiLU;
  std::optional<Activation> timeEmbedAct;

 private:
  at::Tensor timeProjection(const at::Tensor& t) const;
};

}  // namespace difftune
