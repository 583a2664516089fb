// The AutoencoderKL configuration as the C++ side receives it: validated by lib/config/vae.ts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace difftune {

struct VaeConfig {
  int64_t inChannels = 3;
  int64_t outChannels = 3;
  int64_t latentChannels = 4;
  std::vector<std::string> downBlockTypes;  // "DownEncoderBlock2D" each
  std::vector<std::string> upBlockTypes;    // "UpDecoderBlock2D" each
  std::vector<int64_t> blockOutChannels;
  int64_t layersPerBlock = 1;
  std::string actFn = "silu";
  int64_t normNumGroups = 32;
  bool midBlockAddAttention = true;
  bool useQuantConv = true;
  bool usePostQuantConv = true;
};

// diffusers' enable_vae_slicing / enable_vae_tiling: a batch encoded or decoded one image at a time, and
// images larger than a tile encoded or decoded in overlapping tiles (AutoencoderKL.use_slicing,
// use_tiling, tile_sample_min_size, tile_latent_min_size, tile_overlap_factor).
struct VaeTiling {
  bool slicing = false;
  bool tiling = false;
  int64_t tileSampleSize = 0;  // pixels
  int64_t tileLatentSize = 0;  // latents
  double overlap = 0.25;
};

}  // namespace difftune
