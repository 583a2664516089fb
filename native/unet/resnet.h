// ResnetBlock2D, Downsample2D, Upsample2D (diffusers models/resnet.py, models/downsampling.py, upsampling.py).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace difftune {

struct ResnetOptions {
  int64_t inChannels = 0;
  int64_t outChannels = 0;
  int64_t tembChannels = 512;  // <= 0: no time embedding projection
  int64_t groups = 32;
  int64_t groupsOut = -1;  // -1: same as groups
  double eps = 1e-6;
  double dropout = 0.0;
  std::string nonLinearity = "swish";
  std::string timeEmbeddingNorm = "default";  // "default" | "scale_shift"
  double outputScaleFactor = 1.0;
  bool skipTimeAct = false;
};

class ResnetBlock2D : public Module {
 public:
  explicit ResnetBlock2D(const ResnetOptions& o);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb) const;

  ResnetOptions options;
  Activation act;
  std::shared_ptr<GroupNorm> norm1, norm2;
  std::shared_ptr<Conv2d> conv1, conv2, conv_shortcut;
  std::shared_ptr<Linear> time_emb_proj;
};

class Downsample2D : public Module {
 public:
  Downsample2D(int64_t channels, bool useConv, int64_t outChannels, int64_t padding);
  at::Tensor forward(const at::Tensor& x) const;
  int64_t padding;
  std::shared_ptr<Conv2d> conv;  // null: average pooling
};

class Upsample2D : public Module {
 public:
  Upsample2D(int64_t channels, bool useConv, int64_t outChannels);
  // outputSize: the skip connection's spatial size when it is not exactly 2× (odd input sizes).
  at::Tensor forward(const at::Tensor& x, const std::optional<std::vector<int64_t>>& outputSize) const;
  std::shared_ptr<Conv2d> conv;
};

}  // namespace difftune
