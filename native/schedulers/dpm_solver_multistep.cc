// diffusers' DPMSolverMultistepScheduler: DPM-Solver (Lu et al. 2022) and DPM-Solver++ (Lu et al.
// 2022b), multistep orders 1–3, midpoint/heun second-order variants, and the SDE variants. All scalar
// coefficients are float32 arithmetic, as diffusers computes them on 0-d float32 tensors.
#include <ATen/ATen.h>

#include <cmath>
#include <optional>

#include "schedulers/families.h"
#include "schedulers/numpy_compat.h"
#include "schedulers/scheduler_base.h"
#include "schedulers/sigma_schedule.h"
#include "schedulers/timestep_spacing.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

// (alpha_t, sigma_t) of the VP process at noise level sigma (variance-exploding form).
struct AlphaSigma {
  float alpha;
  float sigma;
  float lambda() const { return std::log(alpha) - std::log(sigma); }
};

AlphaSigma alphaSigma(float sigma) {
  const float alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  return {alpha, sigma * alpha};
}

class DPMSolverMultistepScheduler final : public SchedulerBase {
 public:
  explicit DPMSolverMultistepScheduler(const SchedulerConfig& config) : SchedulerBase(config) {
    if (config.solverOrder < 1 || config.solverOrder > 3) {
      throw InvalidArgument("Expected 1, 2 or 3 for solver_order but received " + std::to_string(config.solverOrder));
    }
    if (config.useExponentialSigmas)
      throw InvalidArgument("use_exponential_sigmas is not supported by difftune's DPMSolverMultistepScheduler");
    if (config.useKarrasSigmas && config.useLuLambdas) {
      throw InvalidArgument("use_karras_sigmas and use_lu_lambdas cannot both be true");
    }
    if (!isPlusPlus() && config.finalSigmasType == FinalSigmasType::Zero) {
      throw InvalidArgument("final_sigmas_type \"zero\" is not supported with algorithm_type dpmsolver / sde-dpmsolver; use \"sigma_min\"");
    }
    if (isSde() && config.solverOrder == 3) {
      throw InvalidArgument("solver_order 3 is not available for the SDE variants of DPM-Solver (diffusers has no third-order SDE update)");
    }
    if (config.rescaleBetasZeroSnr) clampTerminalAlphaCumprod();
    const int64_t n = config.numTrainTimesteps;
    // Before setTimesteps diffusers keeps the training sigmas ascending and float timesteps T−1 … 0.
    sigmas_ = trainingSigmas();
    for (double v : npLinspace(0, static_cast<double>(n - 1), n)) timesteps_.insert(timesteps_.begin(), static_cast<float>(v));
    timestepsAreFloat_ = true;
    modelOutputs_.assign(static_cast<size_t>(config.solverOrder), at::Tensor());
  }

  void setTimesteps(int64_t n) override {
    if (n < 1 || n > config_.numTrainTimesteps) {
      throw InvalidArgument("Expected an integer in [1, " + std::to_string(config_.numTrainTimesteps) +
                            "] (num_train_timesteps) for numInferenceSteps but received " + std::to_string(n));
    }
    const int64_t T = config_.numTrainTimesteps;
    const std::vector<float> full = trainingSigmas();
    const std::vector<float> logSigmas = logOfFloat32(full);

    // lambda_min_clipped cuts off the noisiest timesteps: searchsorted over ascending lambda (in float32).
    int64_t clipped = 0;
    const float clip = static_cast<float>(config_.lambdaMinClipped);
    for (int64_t t = T - 1; t >= 0; --t) {
      if (lambdaT(t) < clip)
        ++clipped;
      else
        break;
    }
    const int64_t lastTimestep = T - clipped;
    std::vector<int64_t> ints = dpmTimesteps(config_.timestepSpacing, T, n, config_.stepsOffset, lastTimestep);

    std::vector<double> sigmas;
    std::vector<double> timesteps(ints.begin(), ints.end());
    if (config_.useKarrasSigmas) {
      sigmas = karrasSigmas(full.front(), full.back(), n);
      timesteps.clear();
      for (double s : sigmas) timesteps.push_back(npRound(sigmaToT(s, logSigmas)));
    } else if (config_.useLuLambdas) {
      std::vector<double> lambdas = luLambdas(logSigmas.front(), logSigmas.back(), n);
      timesteps.clear();
      for (double l : lambdas) {
        sigmas.push_back(std::exp(l));
        timesteps.push_back(npRound(sigmaToT(sigmas.back(), logSigmas)));
      }
    } else {
      const std::vector<double> fp(full.begin(), full.end());
      for (int64_t t : ints) sigmas.push_back(npInterpIndex(static_cast<double>(t), fp));
    }

    sigmas_.clear();
    for (double s : sigmas) sigmas_.push_back(static_cast<float>(s));
    sigmas_.push_back(config_.finalSigmasType == FinalSigmasType::SigmaMin ? std::sqrt((1 - alphaProd(0)) / alphaProd(0)) : 0.0f);
    timesteps_.clear();
    for (double t : timesteps) timesteps_.push_back(static_cast<float>(static_cast<int64_t>(t)));
    timestepsAreFloat_ = false;
    numInferenceSteps_ = static_cast<int64_t>(timesteps.size());

    modelOutputs_.assign(static_cast<size_t>(config_.solverOrder), at::Tensor());
    lowerOrderNums_ = 0;
    stepIndex_.reset();
  }

  ScheduleInfo schedule() const override {
    at::Tensor t = at::tensor(timesteps_, at::kFloat);
    if (!timestepsAreFloat_) t = t.to(at::kLong);
    return {wrap(t), wrap(at::tensor(sigmas_, at::kFloat)), 1.0, numInferenceSteps_};
  }

  Tensor scaleModelInput(const Tensor& sample, double) override {
    floatTensorArg(sample, "sample");
    return sample;
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions& options) override {
    if (numInferenceSteps_ == 0) throw InvalidArgument("DPMSolverMultistepScheduler.step: call setTimesteps() first");
    const at::Tensor& rawOutput = floatTensorArg(modelOutputArg, "modelOutput");
    const at::Tensor& rawSample = floatTensorArg(sampleArg, "sample");
    if (!stepIndex_) stepIndex_ = indexOf(timestep);
    const int64_t i = *stepIndex_;
    const int64_t count = static_cast<int64_t>(timesteps_.size());
    if (i >= count) throw InvalidArgument("DPMSolverMultistepScheduler.step: the schedule is finished; call setTimesteps() again");

    const bool lowerOrderFinal = i == count - 1 && (config_.eulerAtFinal || (config_.lowerOrderFinal && count < 15) ||
                                                    config_.finalSigmasType == FinalSigmasType::Zero);
    const bool lowerOrderSecond = i == count - 2 && config_.lowerOrderFinal && count < 15;

    at::Tensor modelOutput = convertModelOutput(rawOutput, rawSample, i);
    for (size_t k = 0; k + 1 < modelOutputs_.size(); ++k) modelOutputs_[k] = modelOutputs_[k + 1];
    modelOutputs_.back() = modelOutput;

    at::Tensor sample = rawSample.to(at::kFloat);
    at::Tensor noise;
    if (isSde()) noise = stepNoise(modelOutput.to(at::kFloat), options, "DPMSolverMultistepScheduler.step");

    at::Tensor prev;
    if (config_.solverOrder == 1 || lowerOrderNums_ < 1 || lowerOrderFinal) {
      prev = firstOrderUpdate(modelOutput, sample, noise, i);
    } else if (config_.solverOrder == 2 || lowerOrderNums_ < 2 || lowerOrderSecond) {
      prev = secondOrderUpdate(sample, noise, i);
    } else {
      prev = thirdOrderUpdate(sample, i);
    }
    if (lowerOrderNums_ < config_.solverOrder) ++lowerOrderNums_;
    stepIndex_ = i + 1;
    return {wrap(prev.to(modelOutput.scalar_type())), Tensor()};
  }

  Tensor addNoise(const Tensor& original, const Tensor& noiseArg, const Tensor& timesteps) override {
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
      if (!std::isfinite(v))
        throw InvalidArgument(std::string("Expected finite timesteps (taken from scheduler.timesteps) for timesteps but received ") +
                              (std::isnan(v) ? "NaN"
                               : v > 0       ? "Infinity"
                                             : "-Infinity") +
                              " at index " + std::to_string(k));
      idx.push_back(indexOf(v));
    }
    at::Tensor sigma =
        at::tensor(sigmas_, at::kFloat).to(x0.device(), x0.scalar_type()).index({at::tensor(idx, at::kLong).to(x0.device())});
    sigma = perBatch(sigma, x0);
    at::Tensor alpha = at::reciprocal(at::pow(at::pow(sigma, 2) + 1, 0.5));
    return wrap(alpha * x0 + (sigma * alpha) * noise);
  }

  Tensor getVelocity(const Tensor&, const Tensor&, const Tensor&) override {
    throw InvalidArgument(
        "DPMSolverMultistepScheduler has no getVelocity (nor does diffusers'); compute v-prediction targets with a DDPM or DDIM scheduler");
  }

 private:
  bool isPlusPlus() const {
    return config_.algorithmType == DPMAlgorithm::DPMSolverPP || config_.algorithmType == DPMAlgorithm::SDEDPMSolverPP;
  }
  bool isSde() const {
    return config_.algorithmType == DPMAlgorithm::SDEDPMSolverPP || config_.algorithmType == DPMAlgorithm::SDEDPMSolver;
  }

  std::vector<float> trainingSigmas() const {
    at::Tensor s = at::pow((1 - alphasCumprod_) / alphasCumprod_, 0.5).contiguous();
    const float* p = s.data_ptr<float>();
    return std::vector<float>(p, p + s.numel());
  }

  // lambda_t = log(sqrt(ᾱ)) − log(sqrt(1 − ᾱ)) of the training schedule, in float32.
  float lambdaT(int64_t t) const {
    const float ac = alphaProd(t);
    return std::log(std::sqrt(ac)) - std::log(std::sqrt(1 - ac));
  }

  // Position of `timestep` in the schedule: the second match if repeated, the last step if absent.
  int64_t indexOf(double timestep) const {
    std::vector<double> schedule(timesteps_.begin(), timesteps_.end());
    const double key = timestepsAreFloat_ ? static_cast<double>(static_cast<float>(timestep)) : timestep;
    const int64_t index = indexForTimestep(schedule, key);
    return index < 0 ? static_cast<int64_t>(timesteps_.size()) - 1 : index;
  }

  AlphaSigma at(int64_t i) const { return alphaSigma(sigmas_[static_cast<size_t>(i)]); }

  // The model output as the solver consumes it: x0 for the ++ variants, epsilon for the others.
  at::Tensor convertModelOutput(at::Tensor modelOutput, const at::Tensor& sample, int64_t i) const {
    const bool learned = config_.dpmVarianceType != DPMVarianceType::None;
    if (isPlusPlus()) {
      at::Tensor x0;
      const AlphaSigma s = at(i);
      switch (config_.predictionType) {
        case PredictionType::Epsilon:
          // diffusers keeps the first 3 channels of a variance-predicting model (an RGB pixel model).
          if (learned) modelOutput = modelOutput.slice(1, 0, 3);
          x0 = (sample - s.sigma * modelOutput) / s.alpha;
          break;
        case PredictionType::Sample: x0 = modelOutput; break;
        case PredictionType::VPrediction: x0 = s.alpha * sample - s.sigma * modelOutput; break;
      }
      if (config_.thresholding) x0 = thresholdSample(x0);
      return x0;
    }
    at::Tensor eps;
    const AlphaSigma s = at(i);
    switch (config_.predictionType) {
      case PredictionType::Epsilon: eps = learned ? modelOutput.slice(1, 0, 3) : modelOutput; break;
      case PredictionType::Sample: eps = (sample - s.alpha * modelOutput) / s.sigma; break;
      case PredictionType::VPrediction: eps = s.alpha * modelOutput + s.sigma * sample; break;
    }
    if (config_.thresholding) {
      at::Tensor x0 = thresholdSample((sample - s.sigma * eps) / s.alpha);
      eps = (sample - s.alpha * x0) / s.sigma;
    }
    return eps;
  }

  at::Tensor firstOrderUpdate(const at::Tensor& m, const at::Tensor& sample, const at::Tensor& noise, int64_t i) const {
    const AlphaSigma t = at(i + 1), s = at(i);
    const float h = t.lambda() - s.lambda();
    switch (config_.algorithmType) {
      case DPMAlgorithm::DPMSolverPP: return (t.sigma / s.sigma) * sample - (t.alpha * (std::exp(-h) - 1.0f)) * m;
      case DPMAlgorithm::DPMSolver: return (t.alpha / s.alpha) * sample - (t.sigma * (std::exp(h) - 1.0f)) * m;
      case DPMAlgorithm::SDEDPMSolverPP:
        return (t.sigma / s.sigma * std::exp(-h)) * sample + (t.alpha * (1 - std::exp(-2.0f * h))) * m +
               t.sigma * std::sqrt(1.0f - std::exp(-2 * h)) * noise;
      case DPMAlgorithm::SDEDPMSolver:
        return (t.alpha / s.alpha) * sample - 2.0f * (t.sigma * (std::exp(h) - 1.0f)) * m +
               t.sigma * std::sqrt(std::exp(2 * h) - 1.0f) * noise;
    }
    throw std::logic_error("algorithm type out of range");
  }

  at::Tensor secondOrderUpdate(const at::Tensor& sample, const at::Tensor& noise, int64_t i) const {
    const AlphaSigma t = at(i + 1), s0 = at(i), s1 = at(i - 1);
    const at::Tensor& m0 = modelOutputs_[modelOutputs_.size() - 1];
    const at::Tensor& m1 = modelOutputs_[modelOutputs_.size() - 2];
    const float h = t.lambda() - s0.lambda();
    const float h0 = s0.lambda() - s1.lambda();
    const float r0 = h0 / h;
    const at::Tensor& d0 = m0;
    const at::Tensor d1 = (1.0f / r0) * (m0 - m1);
    const bool midpoint = config_.solverType == DPMSolverType::Midpoint;
    switch (config_.algorithmType) {
      case DPMAlgorithm::DPMSolverPP:
        if (midpoint) {
          return (t.sigma / s0.sigma) * sample - (t.alpha * (std::exp(-h) - 1.0f)) * d0 - 0.5f * (t.alpha * (std::exp(-h) - 1.0f)) * d1;
        }
        return (t.sigma / s0.sigma) * sample - (t.alpha * (std::exp(-h) - 1.0f)) * d0 + (t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f)) * d1;
      case DPMAlgorithm::DPMSolver:
        if (midpoint) {
          return (t.alpha / s0.alpha) * sample - (t.sigma * (std::exp(h) - 1.0f)) * d0 - 0.5f * (t.sigma * (std::exp(h) - 1.0f)) * d1;
        }
        return (t.alpha / s0.alpha) * sample - (t.sigma * (std::exp(h) - 1.0f)) * d0 - (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f)) * d1;
      case DPMAlgorithm::SDEDPMSolverPP: {
        at::Tensor x = (t.sigma / s0.sigma * std::exp(-h)) * sample + (t.alpha * (1 - std::exp(-2.0f * h))) * d0;
        x = midpoint ? x + 0.5f * (t.alpha * (1 - std::exp(-2.0f * h))) * d1
                     : x + (t.alpha * ((1.0f - std::exp(-2.0f * h)) / (-2.0f * h) + 1.0f)) * d1;
        return x + t.sigma * std::sqrt(1.0f - std::exp(-2 * h)) * noise;
      }
      case DPMAlgorithm::SDEDPMSolver: {
        at::Tensor x = (t.alpha / s0.alpha) * sample - 2.0f * (t.sigma * (std::exp(h) - 1.0f)) * d0;
        x = midpoint ? x - (t.sigma * (std::exp(h) - 1.0f)) * d1 : x - 2.0f * (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f)) * d1;
        return x + t.sigma * std::sqrt(std::exp(2 * h) - 1.0f) * noise;
      }
    }
    throw std::logic_error("algorithm type out of range");
  }

  at::Tensor thirdOrderUpdate(const at::Tensor& sample, int64_t i) const {
    const AlphaSigma t = at(i + 1), s0 = at(i), s1 = at(i - 1), s2 = at(i - 2);
    const size_t last = modelOutputs_.size() - 1;
    const at::Tensor& m0 = modelOutputs_[last];
    const at::Tensor& m1 = modelOutputs_[last - 1];
    const at::Tensor& m2 = modelOutputs_[last - 2];
    const float h = t.lambda() - s0.lambda();
    const float h0 = s0.lambda() - s1.lambda();
    const float h1 = s1.lambda() - s2.lambda();
    const float r0 = h0 / h, r1 = h1 / h;
    const at::Tensor& d0 = m0;
    const at::Tensor d10 = (1.0f / r0) * (m0 - m1);
    const at::Tensor d11 = (1.0f / r1) * (m1 - m2);
    const at::Tensor d1 = d10 + (r0 / (r0 + r1)) * (d10 - d11);
    const at::Tensor d2 = (1.0f / (r0 + r1)) * (d10 - d11);
    if (config_.algorithmType == DPMAlgorithm::DPMSolverPP) {
      return (t.sigma / s0.sigma) * sample - (t.alpha * (std::exp(-h) - 1.0f)) * d0 + (t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f)) * d1 -
             (t.alpha * ((std::exp(-h) - 1.0f + h) / (h * h) - 0.5f)) * d2;
    }
    return (t.alpha / s0.alpha) * sample - (t.sigma * (std::exp(h) - 1.0f)) * d0 - (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f)) * d1 -
           (t.sigma * ((std::exp(h) - 1.0f - h) / (h * h) - 0.5f)) * d2;
  }

  std::vector<float> timesteps_;  // int64 values held exactly (|t| < 2^24) once setTimesteps ran
  bool timestepsAreFloat_ = true;
  std::vector<float> sigmas_;
  int64_t numInferenceSteps_ = 0;
  std::optional<int64_t> stepIndex_;
  std::vector<at::Tensor> modelOutputs_;
  int64_t lowerOrderNums_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> makeDPMSolverMultistepScheduler(const SchedulerConfig& config) {
  return std::make_unique<DPMSolverMultistepScheduler>(config);
}

}  // namespace difftune
