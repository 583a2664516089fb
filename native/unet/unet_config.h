// The U-Net configuration as the C++ side receives it: already validated and normalised by
// lib/config/unet.ts (per-block lists expanded, diffusers' defaults and naming quirks resolved).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace difftune {

struct UNetConfig {
  bool conditional = false;  // UNet2DConditionModel (true) or UNet2DModel (false)
  int64_t inChannels = 3;
  int64_t outChannels = 3;
  bool centerInputSample = false;
  std::string timeEmbeddingType = "positional";  // "positional" | "fourier"
  bool flipSinToCos = true;
  double freqShift = 0;
  std::vector<std::string> downBlockTypes, upBlockTypes;
  std::string midBlockType;  // "" = no mid block
  std::vector<int64_t> blockOutChannels;
  std::vector<int64_t> layersPerBlock;  // per down block
  // Transformer2DModel depth of every attention layer (transformer_layers_per_block and
  // reverse_transformer_layers_per_block, nested forms included, expanded per layer):
  std::vector<int64_t> downTransformerLayers;  // layersPerBlock[i] entries for down block i, blocks in order
  int64_t midTransformerLayers = 1;
  std::vector<int64_t> upTransformerLayers;  // layersPerBlock[n-1-i] + 1 entries for up block i, blocks in order
  double midBlockScaleFactor = 1;
  int64_t downsamplePadding = 1;
  double dropout = 0;
  std::string actFn = "silu";
  std::vector<int64_t> attentionHeadDim;   // per down block; UNet2DModel: channels per head (-1: one head)
  std::vector<int64_t> numAttentionHeads;  // per down block; UNet2DConditionModel transformer heads
  std::vector<int64_t> crossAttentionDim;  // per down block
  std::vector<bool> onlyCrossAttention;    // per down block
  int64_t normNumGroups = 32;
  int64_t attnNormNumGroups = -1;
  double normEps = 1e-5;
  std::string resnetTimeScaleShift = "default";
  bool addAttention = true;
  std::string classEmbedType;   // "" | "timestep" | "identity"
  int64_t numClassEmbeds = -1;  // with classEmbedType "": an embedding table
  bool useLinearProjection = false;
  bool upcastAttention = false;
  int64_t convInKernel = 3;
  int64_t convOutKernel = 3;
  int64_t timeEmbeddingDim = -1;
  std::string timestepPostAct;
  std::string timeEmbeddingActFn;
};

}  // namespace difftune
