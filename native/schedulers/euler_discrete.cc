// diffusers' EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2): the ODE in sigma space,
// x_{i+1} = x_i + (x_i − x0) / σ_i · (σ_{i+1} − σ_i), with optional churn.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

#include "schedulers/families.h"
#include "schedulers/numpy_compat.h"
#include "schedulers/scheduler_base.h"
#include "schedulers/sigma_schedule.h"
#include "schedulers/timestep_spacing.h"
#include "tensor/failure.h"
#include "tensor/generator_data.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

class EulerDiscreteScheduler final : public SchedulerBase {
 public:
  explicit EulerDiscreteScheduler(const SchedulerConfig& config) : SchedulerBase(config) {
    if (config.useExponentialSigmas) throw InvalidArgument("use_exponential_sigmas is not supported by difftune's EulerDiscreteScheduler");
    if (config.rescaleBetasZeroSnr) clampTerminalAlphaCumprod();
    const int64_t n = config.numTrainTimesteps;
    std::vector<float> full = trainingSigmas();
    sigmas_.assign(full.rbegin(), full.rend());
    if (continuousV()) {
      for (float s : sigmas_) timesteps_.push_back(0.25f * std::log(s));
    } else {
      for (double v : npLinspace(0, static_cast<double>(n - 1), n)) timesteps_.push_back(static_cast<float>(v));
      std::reverse(timesteps_.begin(), timesteps_.end());
    }
    sigmas_.push_back(0.0f);
  }

  void setTimesteps(int64_t n) override {
    if (n < 1 || n > config_.numTrainTimesteps) {
      throw InvalidArgument("Expected an integer in [1, " + std::to_string(config_.numTrainTimesteps) +
                            "] (num_train_timesteps) for numInferenceSteps but received " + std::to_string(n));
    }
    std::vector<float> timesteps = eulerTimesteps(config_.timestepSpacing, config_.numTrainTimesteps, n, config_.stepsOffset);
    const std::vector<float> full = trainingSigmas();
    const std::vector<float> logSigmas = logOfFloat32(full);

    std::vector<double> sigmas;  // float64 until the final cast, as in numpy
    if (config_.interpolationType == InterpolationType::Linear) {
      const std::vector<double> fp(full.begin(), full.end());
      for (float t : timesteps) sigmas.push_back(npInterpIndex(static_cast<double>(t), fp));
    } else {
      // torch.linspace(log σ_max, log σ_min, n + 1).exp() in float32 (n + 1 values, as diffusers has it).
      at::Tensor s =
          at::linspace(static_cast<double>(std::log(full.back())), static_cast<double>(std::log(full.front())), n + 1, at::kFloat).exp();
      const float* p = s.data_ptr<float>();
      sigmas.assign(p, p + s.numel());
    }

    std::vector<double> timestepsD(timesteps.begin(), timesteps.end());
    if (config_.useKarrasSigmas) {
      const double sigmaMin = config_.sigmaMin.value_or(sigmas.back());
      const double sigmaMax = config_.sigmaMax.value_or(sigmas.front());
      sigmas = karrasSigmas(sigmaMin, sigmaMax, n);
      timestepsD.clear();
      for (double s : sigmas) timestepsD.push_back(sigmaToT(s, logSigmas));
    }

    std::vector<float> out;
    for (double s : sigmas) out.push_back(static_cast<float>(s));
    out.push_back(config_.finalSigmasType == FinalSigmasType::SigmaMin ? std::sqrt((1 - alphaProd(0)) / alphaProd(0)) : 0.0f);

    timesteps_.clear();
    if (continuousV()) {
      for (size_t i = 0; i + 1 < out.size(); ++i) timesteps_.push_back(0.25f * std::log(out[i]));
    } else {
      for (double t : timestepsD) timesteps_.push_back(static_cast<float>(t));
    }
    sigmas_ = out;
    numInferenceSteps_ = n;
    stepIndex_.reset();
  }

  ScheduleInfo schedule() const override {
    return {wrap(at::tensor(timesteps_, at::kFloat)), wrap(at::tensor(sigmas_, at::kFloat)), initNoiseSigma(), numInferenceSteps_};
  }

  Tensor scaleModelInput(const Tensor& sampleArg, double timestep) override {
    const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
    if (!stepIndex_) stepIndex_ = indexOf(timestep);
    const float sigma = sigmas_[static_cast<size_t>(*stepIndex_)];
    return wrap(sample / std::sqrt(sigma * sigma + 1));
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions& options) override {
    const at::Tensor& modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    at::Tensor sample = floatTensorArg(sampleArg, "sample");
    expectSameShape(sample, "sample", modelOutput, "modelOutput");
    if (!stepIndex_) stepIndex_ = indexOf(timestep);
    const size_t i = static_cast<size_t>(*stepIndex_);
    if (i + 1 >= sigmas_.size()) throw InvalidArgument("EulerDiscreteScheduler.step: the schedule is finished; call setTimesteps() again");

    sample = sample.to(at::kFloat);
    const float sigma = sigmas_[i];
    const double gamma = (options.sTmin <= sigma && sigma <= options.sTmax)
                             ? std::min(options.sChurn / static_cast<double>(sigmas_.size() - 1), std::pow(2.0, 0.5) - 1)
                             : 0.0;
    const float sigmaHat = sigma * static_cast<float>(gamma + 1);
    if (gamma > 0) {
      at::Tensor eps = stepNoise(modelOutput, options, "EulerDiscreteScheduler.step") * options.sNoise;
      sample = sample + eps * std::sqrt(sigmaHat * sigmaHat - sigma * sigma);
    }

    at::Tensor x0;
    switch (config_.predictionType) {
      case PredictionType::Sample: x0 = modelOutput; break;
      case PredictionType::Epsilon: x0 = sample - sigmaHat * modelOutput; break;
      case PredictionType::VPrediction: x0 = modelOutput * (-sigma / std::sqrt(sigma * sigma + 1)) + (sample / (sigma * sigma + 1)); break;
    }
    at::Tensor derivative = (sample - x0) / sigmaHat;
    const float dt = sigmas_[i + 1] - sigmaHat;
    at::Tensor prev = (sample + derivative * dt).to(modelOutput.scalar_type());
    stepIndex_ = *stepIndex_ + 1;
    return {wrap(prev), wrap(x0)};
  }

  Tensor addNoise(const Tensor& original, const Tensor& noiseArg, const Tensor& timesteps) override {
    const at::Tensor& x0 = floatTensorArg(original, "originalSamples");
    const at::Tensor& noise = floatTensorArg(noiseArg, "noise");
    expectSameShape(x0, "originalSamples", noise, "noise");
    at::Tensor idx = scheduleIndices(timesteps, x0);
    at::Tensor sigma = perBatch(at::tensor(sigmas_, at::kFloat).to(x0.device(), x0.scalar_type()).index({idx.to(x0.device())}), x0);
    return wrap(x0 + noise * sigma);
  }

  Tensor getVelocity(const Tensor& sampleArg, const Tensor& noiseArg, const Tensor& timesteps) override {
    const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
    const at::Tensor& noise = floatTensorArg(noiseArg, "noise");
    expectSameShape(sample, "sample", noise, "noise");
    if (!at::isFloatingType(unwrap(timesteps).scalar_type())) {
      throw InvalidArgument(
          "Expected float timesteps taken from scheduler.timesteps for timesteps but received integer ones "
          "(EulerDiscreteScheduler.getVelocity looks timesteps up in its schedule)");
    }
    // Reproduces diffusers as-is: alphas_cumprod is indexed by the timestep's position in the
    // schedule, not by its value.
    return wrap(velocityAt(sample, noise, scheduleIndices(timesteps, sample)));
  }

 private:
  bool continuousV() const {
    return config_.timestepType == TimestepType::Continuous && config_.predictionType == PredictionType::VPrediction;
  }

  // sqrt((1 − ᾱ) / ᾱ) per training timestep, ascending, float32.
  std::vector<float> trainingSigmas() const {
    at::Tensor ac = alphasCumprod_;
    at::Tensor s = at::pow((1 - ac) / ac, 0.5).contiguous();
    const float* p = s.data_ptr<float>();
    return std::vector<float>(p, p + s.numel());
  }

  float initNoiseSigma() const {
    const float maxSigma = *std::max_element(sigmas_.begin(), sigmas_.end());
    if (config_.timestepSpacing == TimestepSpacing::Linspace || config_.timestepSpacing == TimestepSpacing::Trailing) return maxSigma;
    return std::sqrt(maxSigma * maxSigma + 1);
  }

  int64_t indexOf(double timestep) const {
    std::vector<double> schedule(timesteps_.begin(), timesteps_.end());
    // Compared in float32, as torch compares a float32 schedule with a Python number.
    int64_t index = indexForTimestep(schedule, static_cast<double>(static_cast<float>(timestep)));
    if (index < 0) {
      std::ostringstream v;
      v << timestep;
      throw InvalidArgument("Expected one of scheduler.timesteps for timestep but received " + v.str());
    }
    return index;
  }

  at::Tensor scheduleIndices(const Tensor& timesteps, const at::Tensor& like) const {
    if (!timesteps.defined()) throw InvalidArgument("Expected a Tensor for timesteps but received none");
    at::Tensor t = unwrap(timesteps).to(at::kCPU, at::kDouble).flatten();
    expectTimestepCount(t, like);
    std::vector<int64_t> idx;
    const double* p = t.data_ptr<double>();
    for (int64_t k = 0; k < t.numel(); ++k) idx.push_back(indexOf(p[k]));
    return at::tensor(idx, at::kLong);
  }

  std::vector<float> timesteps_;
  std::vector<float> sigmas_;
  int64_t numInferenceSteps_ = 0;
  std::optional<int64_t> stepIndex_;
};

}  // namespace

std::unique_ptr<Scheduler> makeEulerDiscreteScheduler(const SchedulerConfig& config) {
  return std::make_unique<EulerDiscreteScheduler>(config);
}

}  // namespace difftune
