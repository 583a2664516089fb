// What diffusers' exponential-integrator solvers over the VP process share (UniPC, DEIS and
// DPM-Solver singlestep; DPM-Solver multistep predates this file and keeps its own copy): integer
// timesteps with one sigma each plus a final one, (α_t, σ_t) = (1, σ)/sqrt(σ² + 1), the model output
// converted to x0 (with thresholding), add_noise as α·x0 + σ·noise, and the step index taken from the
// first timestep a loop passes (the last step when it is not in the schedule). Internal to
// native/schedulers.
#pragma once

#include <ATen/core/Tensor.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "schedulers/scheduler_base.h"

namespace difftune {

// (alpha_t, sigma_t) of the VP process at noise level sigma, in float32 as diffusers computes them.
struct VpAlphaSigma {
  float alpha;
  float sigma;
  float lambda() const { return std::log(alpha) - std::log(sigma); }
};

VpAlphaSigma vpAlphaSigma(float sigma);

class VpSolverScheduler : public SchedulerBase {
 public:
  VpSolverScheduler(const SchedulerConfig& config, std::string name);

  ScheduleInfo schedule() const override;
  Tensor scaleModelInput(const Tensor& sample, double timestep) override;
  Tensor addNoise(const Tensor& original, const Tensor& noise, const Tensor& timesteps) override;
  Tensor getVelocity(const Tensor& sample, const Tensor& noise, const Tensor& timesteps) override;

 protected:
  void checkStepCount(int64_t n) const;
  // sqrt((1 − ᾱ) / ᾱ) per training timestep, ascending, float32.
  std::vector<float> trainingSigmas() const;
  // sqrt((1 − ᾱ_0) / ᾱ_0): final_sigmas_type "sigma_min".
  float sigmaMinOfTraining() const;

  // The sigmas of integer timesteps `ints` (np.interp over the training sigmas), or with
  // use_karras_sigmas n Karras sigmas over the whole training range and their rounded timesteps.
  struct Grid {
    std::vector<int64_t> timesteps;
    std::vector<double> sigmas;
  };
  Grid grid(std::vector<int64_t> ints, int64_t n) const;
  // Installs a schedule: the grid's timesteps, its sigmas plus `finalSigma`; resets the step index.
  void install(const Grid& g, float finalSigma);

  int64_t currentIndex(double timestep);
  int64_t indexOf(double timestep) const;
  VpAlphaSigma at(int64_t i) const;
  // x0 from the model output at step i (epsilon, sample or v prediction), thresholded when configured;
  // `learnedVariance` keeps the first 3 channels of an epsilon output (DPM-Solver's variance_type).
  at::Tensor predictX0(at::Tensor modelOutput, const at::Tensor& sample, int64_t i, bool learnedVariance = false) const;

  const std::string name_;
  std::vector<float> timesteps_;  // int64 values held exactly (|t| < 2^24) once setTimesteps ran
  bool timestepsAreFloat_ = true;
  std::vector<float> sigmas_;
  int64_t numInferenceSteps_ = 0;
  std::optional<int64_t> stepIndex_;
};

}  // namespace difftune
