#include "schedulers/scheduler_base.h"
#include "schedulers/timestep_spacing.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

#include "schedulers/tables.h"
#include "tensor/failure.h"
#include "tensor/shape_text.h"
#include "tensor/generator_data.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

std::vector<float> hostFloats(const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous().cpu();
  const float* p = c.data_ptr<float>();
  return std::vector<float>(p, p + c.numel());
}

}  // namespace

SchedulerBase::SchedulerBase(const SchedulerConfig& config) : config_(config) {
  if (config.numTrainTimesteps < 2 || config.numTrainTimesteps > 100000) {
    throw InvalidArgument("Expected an integer in [2, 100000] for num_train_timesteps but received " +
                          std::to_string(config.numTrainTimesteps));
  }
  betas_ = makeBetas(config);
  alphasCumprod_ = makeAlphasCumprod(betas_);
  alphasCumprodHost_ = hostFloats(alphasCumprod_);
}

Tensor SchedulerBase::scaleInitialNoise(const Tensor& noise) const {
  const at::Tensor& x = floatTensorArg(noise, "noise");
  return wrap(x * static_cast<float>(schedule().initNoiseSigma));
}

Tensor SchedulerBase::betas() const { return wrap(betas_.clone()); }
Tensor SchedulerBase::alphasCumprod() const { return wrap(alphasCumprod_.clone()); }

Tensor SchedulerBase::snr(const Tensor& timesteps) const {
  const at::Tensor& raw = integerTensorArg(timesteps, "timesteps");
  const int64_t n = config_.numTrainTimesteps;
  if (raw.numel() > 0 && (raw.min().item<int64_t>() < 0 || raw.max().item<int64_t>() >= n)) {
    throw InvalidArgument("Expected training timesteps in [0, " + std::to_string(n - 1) + "] for timesteps but received values in [" +
                          std::to_string(raw.min().item<int64_t>()) + ", " + std::to_string(raw.max().item<int64_t>()) + "]");
  }
  at::Tensor t = raw.to(at::kLong);
  // diffusers' training_utils.compute_snr, operation for operation.
  at::Tensor ac = alphasCumprod_.to(t.device());
  at::Tensor alpha = at::pow(ac, 0.5).index({t});
  at::Tensor sigma = at::pow(1.0 - ac, 0.5).index({t});
  return wrap(at::pow(alpha / sigma, 2));
}

float SchedulerBase::alphaProd(int64_t t) const {
  const int64_t n = static_cast<int64_t>(alphasCumprodHost_.size());
  if (t < -n || t >= n)
    throw InvalidArgument("timestep " + std::to_string(t) + " is outside the training schedule [0, " + std::to_string(n - 1) + "]");
  return alphasCumprodHost_[static_cast<size_t>(t < 0 ? t + n : t)];
}

void SchedulerBase::clampTerminalAlphaCumprod() {
  const float tiny = 1.0f / 16777216.0f;  // 2^-24
  alphasCumprod_[-1] = tiny;
  alphasCumprodHost_.back() = tiny;
}

int64_t SchedulerBase::integerTimestep(double timestep) const {
  const double n = static_cast<double>(config_.numTrainTimesteps);
  if (!std::isfinite(timestep) || std::floor(timestep) != timestep || timestep < -n || timestep >= n) {
    std::ostringstream v;
    v << timestep;
    throw InvalidArgument("Expected an integer timestep in [0, " + std::to_string(config_.numTrainTimesteps - 1) +
                          "] (one of scheduler.timesteps) for timestep but received " + v.str());
  }
  return static_cast<int64_t>(timestep);
}

at::Tensor SchedulerBase::trainingTimesteps(const Tensor& timesteps, const at::Tensor& like) const {
  const at::Tensor& t = integerTensorArg(timesteps, "timesteps");
  expectTimestepCount(t, like);
  const int64_t n = config_.numTrainTimesteps;
  if (t.numel() == 0) return t.to(at::kLong);
  const int64_t lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
  if (lo < 0 || hi >= n) {
    throw InvalidArgument("Expected training timesteps in [0, " + std::to_string(n - 1) + "] for timesteps but received values in [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return t.to(at::kLong);
}

at::Tensor perBatch(const at::Tensor& values, const at::Tensor& like) {
  at::Tensor v = values.flatten();
  while (v.dim() < like.dim()) v = v.unsqueeze(-1);
  return v;
}

at::Tensor SchedulerBase::addNoiseAt(const at::Tensor& original, const at::Tensor& noise, const at::Tensor& indices) const {
  at::Tensor ac = alphasCumprod_.to(original.device()).to(original.scalar_type());
  at::Tensor idx = indices.to(original.device());
  at::Tensor sqrtAlpha = perBatch(at::pow(ac.index({idx}), 0.5), original);
  at::Tensor sqrtOneMinusAlpha = perBatch(at::pow(1 - ac.index({idx}), 0.5), original);
  return sqrtAlpha * original + sqrtOneMinusAlpha * noise;
}

at::Tensor SchedulerBase::velocityAt(const at::Tensor& sample, const at::Tensor& noise, const at::Tensor& indices) const {
  at::Tensor ac = alphasCumprod_.to(sample.device()).to(sample.scalar_type());
  at::Tensor idx = indices.to(sample.device());
  at::Tensor sqrtAlpha = perBatch(at::pow(ac.index({idx}), 0.5), sample);
  at::Tensor sqrtOneMinusAlpha = perBatch(at::pow(1 - ac.index({idx}), 0.5), sample);
  return sqrtAlpha * noise - sqrtOneMinusAlpha * sample;
}

at::Tensor SchedulerBase::thresholdSample(const at::Tensor& sample) const {
  if (sample.dim() < 2)
    throw InvalidArgument("Expected a sample with batch and channel dimensions for thresholding but received shape " + shapeText(sample));
  at::ScalarType dtype = sample.scalar_type();
  at::Tensor x = (dtype == at::kFloat || dtype == at::kDouble) ? sample : sample.to(at::kFloat);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  x = x.reshape({shape[0], -1});
  at::Tensor s = at::quantile(x.abs(), config_.dynamicThresholdingRatio, 1);
  s = at::clamp(s, 1, config_.sampleMaxValue).unsqueeze(1);
  // clamp(x, -s, s) with tensor bounds, spelled so it compiles on libtorch 1.13 and 2.x alike.
  x = at::minimum(at::maximum(x, -s), s) / s;
  return x.reshape(shape).to(dtype);
}

const at::Tensor& floatTensorArg(const Tensor& tensor, const char* param) {
  if (!tensor.defined()) throw InvalidArgument(std::string("Expected a Tensor for ") + param + " but received none");
  const at::Tensor& t = unwrap(tensor);
  if (!at::isFloatingType(t.scalar_type())) {
    throw InvalidArgument(std::string("Expected a floating-point Tensor for ") + param + " but received a " +
                          c10::toString(t.scalar_type()) + " tensor");
  }
  return t;
}

const at::Tensor& integerTensorArg(const Tensor& tensor, const char* param) {
  if (!tensor.defined()) throw InvalidArgument(std::string("Expected a Tensor for ") + param + " but received none");
  const at::Tensor& t = unwrap(tensor);
  if (!at::isIntegralType(t.scalar_type(), /*includeBool=*/false)) {
    throw InvalidArgument(std::string("Expected an integer (int64) Tensor of training timesteps for ") + param + " but received a " +
                          c10::toString(t.scalar_type()) + " tensor");
  }
  return t;
}

void expectSameShape(const at::Tensor& a, const char* nameA, const at::Tensor& b, const char* nameB) {
  if (!a.sizes().equals(b.sizes())) {
    throw InvalidArgument(std::string("Expected ") + nameB + " to have the shape of " + nameA + " " + shapeText(a) +
                          " but received shape " + shapeText(b));
  }
}

at::Tensor stepNoise(const at::Tensor& like, const StepOptions& options, const char* who) {
  if (options.varianceNoise.defined()) {
    if (options.generator.defined()) {
      throw InvalidArgument(std::string(who) + ": pass either options.generator or options.varianceNoise, not both");
    }
    const at::Tensor& noise = floatTensorArg(options.varianceNoise, "options.varianceNoise");
    expectSameShape(like, "modelOutput", noise, "options.varianceNoise");
    return noise.to(like.device(), like.scalar_type());
  }
  return randnLike(like, &options.generator);
}

void expectTimestepCount(const at::Tensor& timesteps, const at::Tensor& like) {
  const int64_t batch = like.dim() > 0 ? like.size(0) : 1;
  if (timesteps.numel() == 1 || timesteps.numel() == batch) return;
  const std::string what = batch == 1 ? "1 timestep" : "1 or " + std::to_string(batch) + " (one per batch item) timesteps";
  throw InvalidArgument("Expected " + what + " for timesteps but received shape " + shapeText(timesteps));
}

int64_t indexForTimestep(const std::vector<double>& schedule, double timestep) {
  int64_t first = -1;
  for (size_t i = 0; i < schedule.size(); ++i) {
    if (schedule[i] != timestep) continue;
    if (first >= 0) return static_cast<int64_t>(i);
    first = static_cast<int64_t>(i);
  }
  return first;
}

IntegerTimestepScheduler::IntegerTimestepScheduler(const SchedulerConfig& config) : SchedulerBase(config) {
  for (int64_t t = config.numTrainTimesteps - 1; t >= 0; --t) timesteps_.push_back(t);
}

void IntegerTimestepScheduler::setTimesteps(int64_t n) {
  if (n < 1 || n > config_.numTrainTimesteps) {
    throw InvalidArgument("Expected an integer in [1, " + std::to_string(config_.numTrainTimesteps) +
                          "] (num_train_timesteps) for numInferenceSteps but received " + std::to_string(n));
  }
  timesteps_ = ddpmTimesteps(config_.timestepSpacing, config_.numTrainTimesteps, n, config_.stepsOffset);
  numInferenceSteps_ = n;
}

ScheduleInfo IntegerTimestepScheduler::schedule() const {
  return {wrap(at::tensor(timesteps_, at::kLong)), Tensor(), 1.0, numInferenceSteps_};
}

Tensor IntegerTimestepScheduler::scaleModelInput(const Tensor& sample, double) {
  floatTensorArg(sample, "sample");
  return sample;
}

Tensor IntegerTimestepScheduler::addNoise(const Tensor& original, const Tensor& noise, const Tensor& timesteps) {
  const at::Tensor& x0 = floatTensorArg(original, "originalSamples");
  const at::Tensor& n = floatTensorArg(noise, "noise");
  expectSameShape(x0, "originalSamples", n, "noise");
  return wrap(addNoiseAt(x0, n, trainingTimesteps(timesteps, x0)));
}

Tensor IntegerTimestepScheduler::getVelocity(const Tensor& sampleArg, const Tensor& noise, const Tensor& timesteps) {
  const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
  const at::Tensor& n = floatTensorArg(noise, "noise");
  expectSameShape(sample, "sample", n, "noise");
  return wrap(velocityAt(sample, n, trainingTimesteps(timesteps, sample)));
}

}  // namespace difftune
