// The noise schedulers, numerically diffusers' (v0.31): DDPM, DDIM, Euler (discrete), DPM-Solver
// multistep, PNDM, Euler ancestral, LMS, Heun, KDPM2 (and ancestral), UniPC, DEIS and DPM-Solver
// singlestep. Torch-free on purpose: the N-API glue includes only this. Every method runs on
// the compute thread; an instance is used by one job at a time (the queue guarantees it), and keeps the
// multistep state (step index, previous model outputs) that setTimesteps() resets.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>

#include "schedulers/scheduler_config.h"
#include "tensor/generator.h"
#include "tensor/tensor.h"

namespace difftune {

struct StepOptions {
  // DDIM: weight of the random term (0 = deterministic DDIM).
  double eta = 0.0;
  // DDIM: recompute epsilon from the clipped x0.
  bool useClippedModelOutput = false;
  // Noise to use instead of drawing it (DDPM's variance, DDIM with eta > 0, SDE-DPM-Solver, Euler churn,
  // the ancestral schedulers).
  Tensor varianceNoise;
  // Where noise is drawn from when varianceNoise is not given; torch's default generator when unset.
  Generator generator;
  // Euler "churn" (Karras et al. 2022, Algorithm 2); 0 = plain Euler.
  double sChurn = 0.0;
  double sTmin = 0.0;
  double sTmax = std::numeric_limits<double>::infinity();
  double sNoise = 1.0;
};

struct StepResult {
  Tensor prevSample;
  Tensor predOriginalSample;  // undefined for DPM-Solver, PNDM, UniPC and DEIS, which do not report it
};

// What setTimesteps() produced (or the schedule right after construction).
struct ScheduleInfo {
  // int64 (DDPM, DDIM, PNDM and, once set, DPM-Solver, UniPC, DEIS), float32 (the sigma-space families),
  // float64 (LMS, Heun and KDPM2 with Karras sigmas, Euler ancestral before setTimesteps), as diffusers has them.
  Tensor timesteps;
  Tensor sigmas;  // float32 (every family but DDPM, DDIM and PNDM); undefined for those
  double initNoiseSigma = 1.0;
  int64_t numInferenceSteps = 0;  // 0 before setTimesteps()
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  virtual void setTimesteps(int64_t numInferenceSteps) = 0;
  virtual ScheduleInfo schedule() const = 0;
  // The start of a sampling loop: noise · init_noise_sigma (diffusers' pipelines do this in float32).
  virtual Tensor scaleInitialNoise(const Tensor& noise) const = 0;
  virtual Tensor scaleModelInput(const Tensor& sample, double timestep) = 0;
  virtual StepResult step(const Tensor& modelOutput, double timestep, const Tensor& sample, const StepOptions& options) = 0;
  virtual Tensor addNoise(const Tensor& originalSamples, const Tensor& noise, const Tensor& timesteps) = 0;
  // Only DDPM, DDIM and Euler have one (as in diffusers); the others throw.
  virtual Tensor getVelocity(const Tensor& sample, const Tensor& noise, const Tensor& timesteps) = 0;

  // Training tables: float32 [numTrainTimesteps].
  virtual Tensor betas() const = 0;
  virtual Tensor alphasCumprod() const = 0;
  // Signal-to-noise ratio alpha_t² / sigma_t² at integer training timesteps (diffusers'
  // training_utils.compute_snr), for min-SNR loss weighting: float32, shaped like timesteps.
  virtual Tensor snr(const Tensor& timesteps) const = 0;
};

// Validates what the struct cannot express (ranges, combinations diffusers rejects) and builds the
// scheduler with its training tables. Throws InvalidArgument naming the option.
std::unique_ptr<Scheduler> makeScheduler(const SchedulerConfig& config);

}  // namespace difftune
