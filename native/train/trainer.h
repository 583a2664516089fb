// The training step, one native call per micro-batch: per-sample noise and timesteps from
// (seed, step, sample index), the noisy input and the target by prediction type, the U-Net forward,
// the (min-SNR weighted) MSE, backward with gradient accumulation; then AdamW with clipping, EMA and
// (fp16) loss scaling. A conditioning model (the text encoder) may run inside the step and train with the
// U-Net, in the same optimizer. Torch-free header for the N-API glue.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/conditioning.h"
#include "tensor/tensor.h"
#include "train/gradient_reducer.h"
#include "unet/unet_model.h"

namespace difftune {

struct TrainableParam {
  std::string name;
  double lrMultiplier = 1.0;
  bool weightDecay = true;
  // Only these rows (indices along dim 0) train: the others' gradients are zeroed before the norm (so
  // clipping and the moments see only these rows) and their values restored bit for bit after each
  // update, which weight decay would otherwise shrink (textual inversion's new token embeddings, as
  // diffusers' index_no_updates). Empty: every row.
  std::vector<int64_t> rows;
};

struct TrainerConfig {
  std::vector<TrainableParam> trainable;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 1e-2;
  double maxGradNorm = 1.0;                // <= 0: no clipping
  std::string predictionType = "epsilon";  // "epsilon" | "v_prediction" | "sample"
  Tensor alphasCumprod;                    // [num_train_timesteps], from the noise scheduler
  int64_t timestepMin = 0;                 // sampled uniformly in [min, max)
  int64_t timestepMax = -1;                // -1: num_train_timesteps
  double minSnrGamma = 0;                  // <= 0: off
  double noiseOffset = 0;
  double inputPerturbation = 0;
  uint64_t seed = 0;
  bool ema = false;
  double emaDecay = 0.9999, emaMinDecay = 0, emaInvGamma = 1, emaPower = 2.0 / 3.0;
  int64_t emaUpdateAfterStep = 0, emaUpdateEvery = 1;
  bool emaWarmup = false, emaOnCpu = false;
  std::string mixedPrecision = "no";  // "no" | "bf16" | "fp16"
  double lossScale = 65536, lossScaleGrowthInterval = 2000;
  // The conditioning model's slots are "<conditioningPrefix><its name>" in `trainable`, the optimizer state
  // and the EMA weights, apart from the U-Net's.
  std::string conditioningPrefix = "text_encoder.";
  int64_t conditioningClipSkip = 0;  // passed to TrainableConditioning::condition
};

struct MicroBatch {
  Tensor pixels;                       // [B, C, H, W] float, the clean samples x0 (in [-1, 1] or latents)
  Tensor classLabels;                  // optional [B] int64
  Tensor context;                      // optional [B, M, D] encoder hidden states
  Tensor inputIds;                     // optional [B, T] token ids: the conditioning model makes the context in the step's graph
  std::vector<int64_t> sampleIndices;  // global index of each sample: its randomness derives from it
  int64_t step = 0;                    // the optimizer step this micro-batch belongs to (0-based)
  int64_t totalSamples = 0;            // samples in the whole optimizer step (over all micro-batches)
  // What the loss sum is divided by, when not totalSamples: data-parallel runs pass the step's global
  // sample count ÷ world size, so that averaging the ranks' gradients gives the mean over every sample
  // even when ranks hold different counts (an epoch's short last batch). <= 0: totalSamples.
  double lossDivisor = 0;
  // Optional: each sample's weight in the loss sum (empty: 1 each). The step's loss is then
  // sum(w_i * loss_i) / divisor, and totalSamples/lossDivisor say what one "sample" is: DreamBooth's prior
  // preservation appends one class sample (weight priorLossWeight) per instance sample and divides by the
  // instance count, which gives diffusers' instance MSE + priorLossWeight x class MSE.
  std::vector<double> lossWeights;
};

struct MicroResult {
  double lossSum = 0;  // sum over the micro-batch of each sample's (min-SNR and lossWeights weighted) loss
  int64_t samples = 0;
  bool finite = true;
};

struct OptimizerStepResult {
  double gradNorm = 0;   // before clipping
  bool skipped = false;  // non-finite loss or gradients: no update
  int64_t optimizerSteps = 0;
  double emaDecay = 0;
  double lossScale = 1;
};

class Trainer {
 public:
  // `conditioning` (optional): a model whose forward runs in each step (micro-batches with inputIds) and
  // whose slots may train with the U-Net's.
  Trainer(std::shared_ptr<UNetModel> model, const TrainerConfig& config, std::shared_ptr<TrainableConditioning> conditioning = nullptr);
  ~Trainer();
  MicroResult accumulate(const MicroBatch& batch);
  OptimizerStepResult step(double lr);
  // Mean unweighted MSE with noise and timesteps fixed by (seed, sample index) and `timesteps`
  // cycled over the samples: comparable across runs and steps.
  double validationLoss(const Tensor& pixels, const Tensor& classLabels, const Tensor& context, const Tensor& inputIds,
                        const std::vector<int64_t>& sampleIndices, uint64_t seed, const std::vector<int64_t>& timesteps);

  // Optimizer moments ("exp_avg.<name>", "exp_avg_sq.<name>") and EMA weights ("<name>").
  NamedTensors optimizerState() const;
  void loadOptimizerState(const NamedTensors& state, int64_t optimizerSteps);
  NamedTensors emaWeights() const;
  void loadEmaWeights(const NamedTensors& weights, int64_t updates);
  int64_t optimizerSteps() const;
  int64_t emaUpdates() const;
  double lossScale() const;
  void setLossScale(double scale);
  // Data-parallel training: copies rank 0's trainable weights (and EMA weights) to this process, then
  // hands every later step's gradients to `reducer` before the norm and clipping. nullptr detaches.
  void setGradientReducer(std::shared_ptr<GradientReducer> reducer);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace difftune
