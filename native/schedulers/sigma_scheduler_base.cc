#include "schedulers/sigma_scheduler_base.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "schedulers/numpy_compat.h"
#include "schedulers/sigma_schedule.h"
#include "schedulers/timestep_spacing.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

SigmaScheduler::SigmaScheduler(const SchedulerConfig& config, std::string name) : SchedulerBase(config), name_(std::move(name)) {
  if (config.useExponentialSigmas) throw InvalidArgument("use_exponential_sigmas is not supported by difftune's " + name_);
}

std::vector<float> SigmaScheduler::trainingSigmas() const {
  at::Tensor s = at::pow((1 - alphasCumprod_) / alphasCumprod_, 0.5).contiguous();
  const float* p = s.data_ptr<float>();
  return std::vector<float>(p, p + s.numel());
}

void SigmaScheduler::checkStepCount(int64_t n) const {
  if (n < 1 || n > config_.numTrainTimesteps) {
    throw InvalidArgument("Expected an integer in [1, " + std::to_string(config_.numTrainTimesteps) +
                          "] (num_train_timesteps) for numInferenceSteps but received " + std::to_string(n));
  }
}

SigmaScheduler::Grid SigmaScheduler::inferenceGrid(int64_t n, bool roundKarrasTimesteps) const {
  const std::vector<float> timesteps = eulerTimesteps(config_.timestepSpacing, config_.numTrainTimesteps, n, config_.stepsOffset);
  const std::vector<float> full = trainingSigmas();
  Grid grid;
  const std::vector<double> fp(full.begin(), full.end());
  for (float t : timesteps) {
    grid.timesteps.push_back(static_cast<double>(t));
    grid.sigmas.push_back(npInterpIndex(static_cast<double>(t), fp));
  }
  if (config_.useKarrasSigmas) {
    const std::vector<float> logSigmas = logOfFloat32(full);
    grid.sigmas = karrasSigmas(grid.sigmas.back(), grid.sigmas.front(), n);
    grid.timesteps.clear();
    for (double s : grid.sigmas) {
      const double t = sigmaToT(s, logSigmas);
      grid.timesteps.push_back(roundKarrasTimesteps ? npRound(t) : t);
    }
    grid.float64Timesteps = true;
  }
  return grid;
}

ScheduleInfo SigmaScheduler::schedule() const {
  at::Tensor t = at::tensor(timesteps_, at::kDouble);
  if (!float64Timesteps_) t = t.to(at::kFloat);
  const float maxSigma = *std::max_element(sigmas_.begin(), sigmas_.end());
  const bool plain = config_.timestepSpacing == TimestepSpacing::Linspace || config_.timestepSpacing == TimestepSpacing::Trailing;
  const float initNoiseSigma = plain ? maxSigma : std::sqrt(maxSigma * maxSigma + 1);
  return {wrap(t), wrap(at::tensor(sigmas_, at::kFloat)), initNoiseSigma, numInferenceSteps_};
}

int64_t SigmaScheduler::indexOf(double timestep) const {
  // Compared in the schedule's dtype, as torch compares it with a Python number.
  const double key = float64Timesteps_ ? timestep : static_cast<double>(static_cast<float>(timestep));
  const int64_t index = indexForTimestep(timesteps_, key);
  if (index < 0) {
    std::ostringstream v;
    v << timestep;
    throw InvalidArgument("Expected one of scheduler.timesteps for timestep but received " + v.str());
  }
  return index;
}

int64_t SigmaScheduler::currentIndex(double timestep) {
  if (!stepIndex_) stepIndex_ = indexOf(timestep);
  return *stepIndex_;
}

float SigmaScheduler::sigmaAt(int64_t i) const {
  if (i < 0 || i >= static_cast<int64_t>(sigmas_.size())) {
    throw InvalidArgument(name_ + ".step: the schedule is finished; call setTimesteps() again");
  }
  return sigmas_[static_cast<size_t>(i)];
}

Tensor SigmaScheduler::scaleModelInput(const Tensor& sampleArg, double timestep) {
  const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
  const float sigma = sigmaAt(currentIndex(timestep));
  return wrap(sample / std::sqrt(sigma * sigma + 1));
}

at::Tensor SigmaScheduler::predictOriginal(const at::Tensor& modelOutput, const at::Tensor& sample, float sigma) const {
  switch (config_.predictionType) {
    case PredictionType::Epsilon: return sample - sigma * modelOutput;
    case PredictionType::VPrediction: return modelOutput * (-sigma / std::sqrt(sigma * sigma + 1)) + (sample / (sigma * sigma + 1));
    case PredictionType::Sample: return modelOutput;
  }
  throw std::logic_error("prediction type out of range");
}

Tensor SigmaScheduler::addNoise(const Tensor& original, const Tensor& noiseArg, const Tensor& timesteps) {
  const at::Tensor& x0 = floatTensorArg(original, "originalSamples");
  const at::Tensor& noise = floatTensorArg(noiseArg, "noise");
  expectSameShape(x0, "originalSamples", noise, "noise");
  if (!timesteps.defined()) throw InvalidArgument("Expected a Tensor for timesteps but received none");
  at::Tensor t = unwrap(timesteps).to(at::kCPU, at::kDouble).flatten();
  expectTimestepCount(t, x0);
  std::vector<int64_t> idx;
  for (int64_t k = 0; k < t.numel(); ++k) idx.push_back(indexOf(t.data_ptr<double>()[k]));
  at::Tensor sigma = at::tensor(sigmas_, at::kFloat).to(x0.device(), x0.scalar_type()).index({at::tensor(idx, at::kLong).to(x0.device())});
  return wrap(x0 + noise * perBatch(sigma, x0));
}

Tensor SigmaScheduler::getVelocity(const Tensor&, const Tensor&, const Tensor&) {
  throw InvalidArgument(name_ + " has no getVelocity (nor does diffusers'); compute v-prediction targets with a DDPM or DDIM scheduler");
}

}  // namespace difftune
