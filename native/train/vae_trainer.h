// Training an AutoencoderKL on images, one native call per step. The loss is that of diffusers'
// examples/research_projects/autoencoderkl/train_autoencoderkl.py (the loss of ldm's
// LPIPSWithDiscriminator with its log-variance fixed at 0) without the perceptual and adversarial terms:
//   posterior = DiagonalGaussianDistribution(quant_conv(encoder(x)))   (logvar clamped to [−30, 20])
//   z = mean + exp(½·logvar)·ε, ε ~ N(0, 1) from (seed, step, sample index)   (posterior.sample())
//   loss = Σ_pixels rec(decoder(post_quant_conv(z)), x) / B + klWeight · Σ_latents KL / B
// with rec = (x̂ − x)² ("mse") or |x̂ − x| ("l1") and KL = ½(mean² + exp(logvar) − 1 − logvar)
// (posterior.kl() against N(0, I)): each term summed over an image's elements, then averaged over the
// batch, as that script and ldm do (so klWeight means what their kl_scale / kl_weight mean). Then
// gradient clipping and AdamW over every parameter (train/adamw.h). Torch-free header for the N-API glue.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/model_types.h"
#include "tensor/tensor.h"
#include "vae/vae_model.h"

namespace difftune {

struct VaeTrainerConfig {
  std::string reconstructionLoss = "mse";  // "mse" | "l1"
  double klWeight = 1e-6;                  // diffusers' kl_scale default
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 1e-2;
  double maxGradNorm = 1.0;  // <= 0: no clipping
  uint64_t seed = 0;
};

struct VaeBatch {
  Tensor images;                       // [B, in_channels, H, W] float in [-1, 1]; H and W multiples of the scale factor
  std::vector<int64_t> sampleIndices;  // global index of each image: its posterior noise derives from it
  int64_t step = 0;                    // the optimizer step (0-based)
};

// The loss and its two terms, each a mean over the batch of per-image sums (float32, float64 for a
// float64 model).
struct VaeLossParts {
  double loss = 0, reconstruction = 0, kl = 0;
  bool finite = true;
};

struct VaeStepResult {
  VaeLossParts loss;
  double gradNorm = 0;   // before clipping
  bool skipped = false;  // non-finite loss or gradients: no update
  int64_t optimizerSteps = 0;
};

struct VaeGradients {
  VaeLossParts loss;
  NamedTensors gradParams;  // every parameter's, in checkpoint order
};

// Sums over a batch, so that the batches of a held-out set add up.
struct VaeEvaluation {
  double reconstructionSum = 0;  // rec(decode(mean), x) over every element: diffusers' vae(x).sample
  double klSum = 0;              // per-image KL, summed over the images
  // Over every element of a posterior draw z (noise from the evaluation stream): what a U-Net trains on.
  double latentSum = 0, latentSquareSum = 0;
  int64_t images = 0, pixelElements = 0, latentElements = 0;
};

class VaeTrainer {
 public:
  // Every parameter of `model` trains (requires_grad set on all of them).
  VaeTrainer(std::shared_ptr<VaeModel> model, const VaeTrainerConfig& config);
  ~VaeTrainer();
  // Forward, backward, clipping, AdamW at `lr`; skipped (and reported) when not finite.
  VaeStepResult step(const VaeBatch& batch, double lr);
  // The step's loss and gradients (the same noise), without clipping or an update.
  VaeGradients gradients(const VaeBatch& batch);
  // Without autograd: the deterministic reconstruction and the latents' moments.
  VaeEvaluation evaluate(const VaeBatch& batch);
  int64_t optimizerSteps() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace difftune
