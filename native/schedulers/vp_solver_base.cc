#include "schedulers/vp_solver_base.h"

#include <ATen/ATen.h>

#include <sstream>

#include "schedulers/numpy_compat.h"
#include "schedulers/sigma_schedule.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

VpAlphaSigma vpAlphaSigma(float sigma) {
  const float alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  return {alpha, sigma * alpha};
}

VpSolverScheduler::VpSolverScheduler(const SchedulerConfig& config, std::string name) : SchedulerBase(config), name_(std::move(name)) {
  if (config.useExponentialSigmas) throw InvalidArgument("use_exponential_sigmas is not supported by difftune's " + name_);
  if (config.solverOrder < 1 || config.solverOrder > 3) {
    throw InvalidArgument("Expected 1, 2 or 3 for solver_order but received " + std::to_string(config.solverOrder));
  }
  if (config.rescaleBetasZeroSnr) clampTerminalAlphaCumprod();
  // Before setTimesteps diffusers keeps the training sigmas ascending and float timesteps T−1 … 0.
  sigmas_ = trainingSigmas();
  const int64_t n = config.numTrainTimesteps;
  for (double v : npLinspace(0, static_cast<double>(n - 1), n)) timesteps_.insert(timesteps_.begin(), static_cast<float>(v));
}

void VpSolverScheduler::checkStepCount(int64_t n) const {
  if (n < 1 || n > config_.numTrainTimesteps) {
    throw InvalidArgument("Expected an integer in [1, " + std::to_string(config_.numTrainTimesteps) +
                          "] (num_train_timesteps) for numInferenceSteps but received " + std::to_string(n));
  }
}

std::vector<float> VpSolverScheduler::trainingSigmas() const {
  at::Tensor s = at::pow((1 - alphasCumprod_) / alphasCumprod_, 0.5).contiguous();
  const float* p = s.data_ptr<float>();
  return std::vector<float>(p, p + s.numel());
}

float VpSolverScheduler::sigmaMinOfTraining() const { return std::sqrt((1 - alphaProd(0)) / alphaProd(0)); }

VpSolverScheduler::Grid VpSolverScheduler::grid(std::vector<int64_t> ints, int64_t n) const {
  const std::vector<float> full = trainingSigmas();
  Grid g;
  if (config_.useKarrasSigmas) {
    const std::vector<float> logSigmas = logOfFloat32(full);
    g.sigmas = karrasSigmas(full.front(), full.back(), n);
    for (double s : g.sigmas) g.timesteps.push_back(static_cast<int64_t>(npRound(sigmaToT(s, logSigmas))));
  } else {
    const std::vector<double> fp(full.begin(), full.end());
    for (int64_t t : ints) g.sigmas.push_back(npInterpIndex(static_cast<double>(t), fp));
    g.timesteps = std::move(ints);
  }
  return g;
}

void VpSolverScheduler::install(const Grid& g, float finalSigma) {
  sigmas_.clear();
  for (double s : g.sigmas) sigmas_.push_back(static_cast<float>(s));
  sigmas_.push_back(finalSigma);
  timesteps_.clear();
  for (int64_t t : g.timesteps) timesteps_.push_back(static_cast<float>(t));
  timestepsAreFloat_ = false;
  numInferenceSteps_ = static_cast<int64_t>(g.timesteps.size());
  stepIndex_.reset();
}

ScheduleInfo VpSolverScheduler::schedule() const {
  at::Tensor t = at::tensor(timesteps_, at::kFloat);
  if (!timestepsAreFloat_) t = t.to(at::kLong);
  return {wrap(t), wrap(at::tensor(sigmas_, at::kFloat)), 1.0, numInferenceSteps_};
}

Tensor VpSolverScheduler::scaleModelInput(const Tensor& sample, double) {
  floatTensorArg(sample, "sample");
  return sample;
}

int64_t VpSolverScheduler::indexOf(double timestep) const {
  std::vector<double> schedule(timesteps_.begin(), timesteps_.end());
  const double key = timestepsAreFloat_ ? static_cast<double>(static_cast<float>(timestep)) : timestep;
  const int64_t index = indexForTimestep(schedule, key);
  return index < 0 ? static_cast<int64_t>(timesteps_.size()) - 1 : index;
}

int64_t VpSolverScheduler::currentIndex(double timestep) {
  if (numInferenceSteps_ == 0) throw InvalidArgument(name_ + ".step: call setTimesteps() first");
  if (!stepIndex_) stepIndex_ = indexOf(timestep);
  if (*stepIndex_ >= static_cast<int64_t>(timesteps_.size())) {
    throw InvalidArgument(name_ + ".step: the schedule is finished; call setTimesteps() again");
  }
  return *stepIndex_;
}

VpAlphaSigma VpSolverScheduler::at(int64_t i) const {
  if (i < 0 || i >= static_cast<int64_t>(sigmas_.size())) throw std::logic_error(name_ + ": sigma index out of range");
  return vpAlphaSigma(sigmas_[static_cast<size_t>(i)]);
}

at::Tensor VpSolverScheduler::predictX0(at::Tensor modelOutput, const at::Tensor& sample, int64_t i, bool learnedVariance) const {
  at::Tensor x0;
  const VpAlphaSigma s = at(i);
  switch (config_.predictionType) {
    case PredictionType::Epsilon:
      if (learnedVariance) modelOutput = modelOutput.slice(1, 0, 3);
      x0 = (sample - s.sigma * modelOutput) / s.alpha;
      break;
    case PredictionType::Sample: x0 = modelOutput; break;
    case PredictionType::VPrediction: x0 = s.alpha * sample - s.sigma * modelOutput; break;
  }
  if (config_.thresholding) x0 = thresholdSample(x0);
  return x0;
}

Tensor VpSolverScheduler::addNoise(const Tensor& original, const Tensor& noiseArg, const Tensor& timesteps) {
  const at::Tensor& x0 = floatTensorArg(original, "originalSamples");
  const at::Tensor& noise = floatTensorArg(noiseArg, "noise");
  expectSameShape(x0, "originalSamples", noise, "noise");
  if (!timesteps.defined()) throw InvalidArgument("Expected a Tensor for timesteps but received none");
  at::Tensor t = unwrap(timesteps).to(at::kCPU, at::kDouble).flatten();
  expectTimestepCount(t, x0);
  std::vector<int64_t> idx;
  for (int64_t k = 0; k < t.numel(); ++k) {
    const double v = t.data_ptr<double>()[k];
    // indexOf maps an absent timestep to the last step (as diffusers does); NaN would land there silently.
    if (!std::isfinite(v)) {
      throw InvalidArgument(std::string("Expected finite timesteps (taken from scheduler.timesteps) for timesteps but received ") +
                            (std::isnan(v) ? "NaN"
                             : v > 0       ? "Infinity"
                                           : "-Infinity") +
                            " at index " + std::to_string(k));
    }
    idx.push_back(indexOf(v));
  }
  at::Tensor sigma = at::tensor(sigmas_, at::kFloat).to(x0.device(), x0.scalar_type()).index({at::tensor(idx, at::kLong).to(x0.device())});
  sigma = perBatch(sigma, x0);
  at::Tensor alpha = at::reciprocal(at::pow(at::pow(sigma, 2) + 1, 0.5));
  return wrap(alpha * x0 + (sigma * alpha) * noise);
}

Tensor VpSolverScheduler::getVelocity(const Tensor&, const Tensor&, const Tensor&) {
  throw InvalidArgument(name_ + " has no getVelocity (nor does diffusers'); compute v-prediction targets with a DDPM or DDIM scheduler");
}

}  // namespace difftune
