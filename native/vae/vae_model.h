// A torch-free facade over AutoencoderKL for the N-API glue (tensors cross as difftune::Tensor).
// encode/decode/forward run without autograd, in eval mode (it has no dropout or batch statistics);
// train/vae_trainer.h trains it through autoencoder(). Every method may be slow: call them on the
// compute thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/model_types.h"
#include "vae/vae_config.h"

namespace at {
class Tensor;
}  // namespace at

namespace difftune {

class AutoencoderKL;

// The latent distribution of an encoded batch: DiagonalGaussianDistribution's parameters.
struct VaeEncoding {
  Tensor mean, logvar, std;  // [B, latent_channels, h, w] each; std = exp(0.5·logvar)
};

struct VaeBackwardResult : MseBackwardResult {
  Tensor gradLatents;
};

class VaeModel {
 public:
  explicit VaeModel(const VaeConfig& config);
  ~VaeModel();

  std::vector<ParameterInfo> parameters() const;
  // Strict (every key, right shapes); see loadModuleStateDict.
  void loadStateDict(const NamedTensors& weights, const std::string& source);
  // loadStateDict in two halves, for weights streamed from a file one tensor at a time: the whole set's
  // check from names, shapes and dtypes, then copies of some tensors each (see checkModuleStateDict).
  void checkStateDict(const std::vector<ParameterInfo>& weights, const std::string& source) const;
  void copyWeights(const NamedTensors& weights, const std::string& source);
  NamedTensors stateDict() const;
  void to(const std::string& device, DType dtype);
  // torch.nn default initialisation from a seed.
  void initialize(uint64_t seed);

  // images [B, in_channels, H, W] (any float dtype, converted to the model's) → the latent distribution;
  // sliced and tiled as diffusers' AutoencoderKL.encode with use_slicing / use_tiling.
  VaeEncoding encode(const Tensor& images, const VaeTiling& tiling = {}) const;
  // latents [B, latent_channels, h, w] in the VAE's own scale → images [B, out_channels, h·f, w·f];
  // sliced and tiled as diffusers' AutoencoderKL.decode.
  Tensor decode(const Tensor& latents, const VaeTiling& tiling = {}) const;
  // decode(encode(images).mean): diffusers' vae(images).sample.
  Tensor forward(const Tensor& images) const;
  // loss = mean((decode(latents) − target)²); backward; gradients of `names` (all when empty).
  VaeBackwardResult decodeBackwardMse(const Tensor& latents, const Tensor& target, const std::vector<std::string>& names);

  std::string device() const;
  DType dtype() const;
  int64_t scaleFactor() const;  // 2^(levels − 1)

  // The module tree, for the trainer (train/vae_trainer.h, which includes autoencoder_kl.h itself).
  AutoencoderKL& autoencoder() { return *vae_; }
  // `images` checked as encode() checks them ([B, in_channels, H, W], floating, sides of at least
  // scaleFactor()) and moved to the model's device and dtype.
  at::Tensor inputImages(const Tensor& images, const char* what) const;

 private:
  std::unique_ptr<AutoencoderKL> vae_;
};

}  // namespace difftune
