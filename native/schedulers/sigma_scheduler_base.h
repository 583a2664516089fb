// What diffusers' k-diffusion style discrete schedulers share (EulerAncestral, LMS, Heun, KDPM2 and
// KDPM2Ancestral): a schedule of sigmas σ_i = sqrt((1 − ᾱ)/ᾱ) at float timesteps (float64 with
// Karras sigmas, as diffusers leaves them), inputs scaled by 1/sqrt(σ² + 1), add_noise as
// x0 + σ·noise, and a step index found from the first timestep a loop passes. Internal to
// native/schedulers.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "schedulers/scheduler_base.h"

namespace difftune {

class SigmaScheduler : public SchedulerBase {
 public:
  SigmaScheduler(const SchedulerConfig& config, std::string name);

  ScheduleInfo schedule() const override;
  Tensor scaleModelInput(const Tensor& sample, double timestep) override;
  Tensor addNoise(const Tensor& original, const Tensor& noise, const Tensor& timesteps) override;
  Tensor getVelocity(const Tensor& sample, const Tensor& noise, const Tensor& timesteps) override;

 protected:
  // The inference grid before a family expands it: n timesteps spaced by timestep_spacing (float32
  // values), the training sigmas interpolated at them (float64, as numpy leaves them) and, with
  // use_karras_sigmas, Karras sigmas between that grid's ends with the timesteps mapped back from them
  // (float64; rounded when `roundKarrasTimesteps`).
  struct Grid {
    std::vector<double> timesteps;
    std::vector<double> sigmas;
    bool float64Timesteps = false;
  };
  Grid inferenceGrid(int64_t n, bool roundKarrasTimesteps) const;

  // sqrt((1 − ᾱ) / ᾱ) per training timestep, ascending, float32.
  std::vector<float> trainingSigmas() const;

  void checkStepCount(int64_t n) const;
  // Where a loop is: set from the first timestep passed (diffusers' _init_step_index).
  int64_t currentIndex(double timestep);
  float sigmaAt(int64_t i) const;
  // The position of `timestep` in the schedule (the second match when repeated); throws when absent.
  int64_t indexOf(double timestep) const;
  // x0 from the model output at noise level sigma (epsilon, v or sample prediction).
  at::Tensor predictOriginal(const at::Tensor& modelOutput, const at::Tensor& sample, float sigma) const;

  const std::string name_;
  std::vector<double> timesteps_;
  bool float64Timesteps_ = false;
  std::vector<float> sigmas_;
  int64_t numInferenceSteps_ = 0;
  std::optional<int64_t> stepIndex_;
};

}  // namespace difftune
