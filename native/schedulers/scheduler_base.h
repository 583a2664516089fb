// What the five families share: the training tables, Python-style table lookups, prediction-type
// conversions, diffusers' dynamic thresholding, and noise drawing. Internal to native/schedulers.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "schedulers/scheduler.h"

namespace difftune {

class SchedulerBase : public Scheduler {
 public:
  explicit SchedulerBase(const SchedulerConfig& config);

  Tensor scaleInitialNoise(const Tensor& noise) const override;
  Tensor betas() const override;
  Tensor alphasCumprod() const override;
  Tensor snr(const Tensor& timesteps) const override;

 protected:
  // alphas_cumprod[t] with Python's indexing (negative t counts from the end), as a float32 value.
  float alphaProd(int64_t t) const;
  // Zero-terminal-SNR schedules make the last alpha_cumprod 0, which sigma-space families cannot
  // divide by: diffusers (Euler, DPM-Solver) sets it to 2^-24 instead.
  void clampTerminalAlphaCumprod();
  // A timestep that must be an integer in [-T, T) (T = num_train_timesteps), for the integer families.
  int64_t integerTimestep(double timestep) const;

  // Integer training timesteps for add_noise/get_velocity: one per batch item of `like` (or one for all),
  // each in [0, T).
  at::Tensor trainingTimesteps(const Tensor& timesteps, const at::Tensor& like) const;

  // sqrt(ᾱ)·x0 + sqrt(1 − ᾱ)·noise and sqrt(ᾱ)·noise − sqrt(1 − ᾱ)·sample, with ᾱ = alphas_cumprod[index]
  // per batch item, broadcast over the remaining dimensions.
  at::Tensor addNoiseAt(const at::Tensor& original, const at::Tensor& noise, const at::Tensor& indices) const;
  at::Tensor velocityAt(const at::Tensor& sample, const at::Tensor& noise, const at::Tensor& indices) const;

  // Per-sample dynamic thresholding (Imagen): clamp x0 to the ratio-quantile of |x0|, at least 1 and at
  // most sample_max_value, and rescale.
  at::Tensor thresholdSample(const at::Tensor& sample) const;

  const SchedulerConfig config_;
  at::Tensor betas_;
  at::Tensor alphasCumprod_;
  std::vector<float> alphasCumprodHost_;
};

// Checks shared by the families' entry points; errors name the parameter.
const at::Tensor& floatTensorArg(const Tensor& tensor, const char* param);
const at::Tensor& integerTensorArg(const Tensor& tensor, const char* param);
void expectSameShape(const at::Tensor& a, const char* nameA, const at::Tensor& b, const char* nameB);
// Noise for a step: options.varianceNoise (checked against `like`) or a draw from options.generator.
at::Tensor stepNoise(const at::Tensor& like, const StepOptions& options, const char* who);

// One timestep for the whole batch of `like`, or one per batch item.
void expectTimestepCount(const at::Tensor& timesteps, const at::Tensor& like);

// One value per batch item (or one for all), shaped [B, 1, 1, ...] to broadcast against `like`.
at::Tensor perBatch(const at::Tensor& values, const at::Tensor& like);

// diffusers' index_for_timestep: the position of `timestep` in `schedule`; the second match when it
// occurs more than once (so img2img starting mid-schedule does not skip a step); -1 when absent.
int64_t indexForTimestep(const std::vector<double>& schedule, double timestep);

// DDPM and DDIM: integer timesteps counting down from num_train_timesteps − 1, spaced by
// timestep_spacing, no input scaling, and add_noise / get_velocity at training timesteps.
class IntegerTimestepScheduler : public SchedulerBase {
 public:
  explicit IntegerTimestepScheduler(const SchedulerConfig& config);
  void setTimesteps(int64_t n) override;
  ScheduleInfo schedule() const override;
  Tensor scaleModelInput(const Tensor& sample, double timestep) override;
  Tensor addNoise(const Tensor& original, const Tensor& noise, const Tensor& timesteps) override;
  Tensor getVelocity(const Tensor& sample, const Tensor& noise, const Tensor& timesteps) override;

 protected:
  std::vector<int64_t> timesteps_;
  int64_t numInferenceSteps_ = 0;
};

}  // namespace difftune
