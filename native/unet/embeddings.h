// Time and class embeddings (diffusers models/embeddings.py).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "nn/layers.h"

namespace difftune {

// get_timestep_embedding: sinusoids of `timesteps` [N] → [N, dim] (float32).
at::Tensor timestepEmbedding(const at::Tensor& timesteps, int64_t dim, bool flipSinToCos, double downscaleFreqShift, double scale = 1.0,
                             double maxPeriod = 10000.0);

// Timesteps: no parameters, the sinusoidal projection.
class Timesteps : public Module {
 public:
  Timesteps(int64_t channels, bool flipSinToCos, double downscaleFreqShift)
      : channels(channels), flipSinToCos(flipSinToCos), downscaleFreqShift(downscaleFreqShift) {}
  at::Tensor forward(const at::Tensor& timesteps) const { return timestepEmbedding(timesteps, channels, flipSinToCos, downscaleFreqShift); }
  int64_t channels;
  bool flipSinToCos;
  double downscaleFreqShift;
};

// GaussianFourierProjection(embedding_size, scale=16): a fixed random projection (never trained).
class GaussianFourierProjection : public Layer {
 public:
  GaussianFourierProjection(int64_t embeddingSize, double scale, bool log = true, bool flipSinToCos = false);
  at::Tensor forward(const at::Tensor& x) const;
  void reset(at::Generator& gen) override;
  double scale;
  bool log, flipSinToCos;
  at::Tensor& weight;
};

// TimestepEmbedding: linear_1 → act → linear_2 (→ post_act).
class TimestepEmbedding : public Module {
 public:
  TimestepEmbedding(int64_t in, int64_t timeEmbedDim, const std::string& actFn, int64_t outDim = -1, const std::string& postActFn = "");
  at::Tensor forward(const at::Tensor& sample) const;
  std::shared_ptr<Linear> linear_1, linear_2;
  Activation act;
  std::optional<Activation> postAct;
};

}  // namespace difftune
