// The U-Net's down, mid and up blocks (diffusers models/unets/unet_2d_blocks.py):
// DownBlock2D / AttnDownBlock2D / CrossAttnDownBlock2D, UNetMidBlock2D / UNetMidBlock2DCrossAttn,
// UpBlock2D / AttnUpBlock2D / CrossAttnUpBlock2D. One class per role; `type` picks the attention kind.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "unet/attention_processor.h"
#include "unet/resnet.h"
#include "unet/transformer_2d.h"

namespace difftune {

struct BlockOptions {
  std::string type;
  int64_t numLayers = 1;
  std::vector<int64_t> transformerLayers;  // cross-attention blocks: the Transformer2DModel depth of each layer
  int64_t inChannels = 0;
  int64_t outChannels = 0;
  int64_t prevOutputChannels = 0;  // up blocks
  int64_t tembChannels = 0;
  bool addSample = true;  // add_downsample / add_upsample
  double resnetEps = 1e-6;
  std::string actFn = "silu";
  int64_t groups = 32;
  int64_t attnGroups = -1;        // mid block of UNet2DModel: attn_norm_num_groups
  int64_t attentionHeadDim = -1;  // UNet2DModel attention: channels per head
  int64_t numAttentionHeads = 1;  // Transformer2DModel heads
  int64_t crossAttentionDim = -1;
  int64_t downsamplePadding = 1;
  std::string resnetTimeScaleShift = "default";
  double outputScaleFactor = 1.0;
  double dropout = 0.0;
  bool useLinearProjection = false;
  bool onlyCrossAttention = false;
  bool upcastAttention = false;
  bool resnetSkipTimeAct = false;
  bool addAttention = true;  // UNetMidBlock2D
};

// Whichever attention a block holds: diffusers' Attention (UNet2DModel) or a Transformer2DModel.
class BlockAttentions : public Module {
 public:
  void add(std::shared_ptr<Attention> a);
  void add(std::shared_ptr<Transformer2DModel> t);
  size_t size() const { return plain_.size() + transformers_.size(); }
  // recompute: gradient checkpointing of this attention / Transformer2DModel (see checkpointLayer).
  at::Tensor forward(size_t i, const at::Tensor& x, const at::Tensor& context, bool recompute = false) const;

 private:
  std::vector<std::shared_ptr<Attention>> plain_;
  std::vector<std::shared_ptr<Transformer2DModel>> transformers_;
};

class DownBlock : public Module {
 public:
  explicit DownBlock(const BlockOptions& o);
  // Appends each resnet/attention output and the downsampled output to `skips`. recompute: gradient
  // checkpointing per resnet and per attention, as diffusers does (the samplers are kept).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb, const at::Tensor& context, std::vector<at::Tensor>& skips,
                     bool recompute = false) const;
  BlockOptions options;
  std::shared_ptr<ModuleList<ResnetBlock2D>> resnets;
  std::shared_ptr<BlockAttentions> attentions;
  std::shared_ptr<ModuleList<Downsample2D>> downsamplers;
};

class MidBlock : public Module {
 public:
  explicit MidBlock(const BlockOptions& o);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb, const at::Tensor& context, bool recompute = false) const;
  BlockOptions options;
  std::shared_ptr<ModuleList<ResnetBlock2D>> resnets;
  std::shared_ptr<BlockAttentions> attentions;
};

class UpBlock : public Module {
 public:
  explicit UpBlock(const BlockOptions& o);
  // `skips`: this block's skip connections in the order its resnets consume them. upsampleSize: the
  // next skip's size where it is not exactly 2× (inputs not a multiple of 2^levels).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb, const at::Tensor& context, const std::vector<at::Tensor>& skips,
                     const std::optional<std::vector<int64_t>>& upsampleSize, bool recompute = false) const;
  size_t numResnets() const { return resnets->size(); }
  BlockOptions options;
  std::shared_ptr<ModuleList<ResnetBlock2D>> resnets;
  std::shared_ptr<BlockAttentions> attentions;
  std::shared_ptr<ModuleList<Upsample2D>> upsamplers;
};

bool isCrossAttentionBlock(const std::string& type);

}  // namespace difftune
