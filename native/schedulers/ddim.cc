// diffusers' DDIMScheduler (Song et al. 2020): deterministic at eta = 0, ancestral-like with eta > 0.
#include <ATen/ATen.h>

#include <cmath>

#include "schedulers/families.h"
#include "schedulers/scheduler_base.h"
#include "schedulers/timestep_spacing.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

class DDIMScheduler final : public IntegerTimestepScheduler {
 public:
  explicit DDIMScheduler(const SchedulerConfig& config)
      : IntegerTimestepScheduler(config), finalAlphaCumprod_(config.setAlphaToOne ? 1.0f : alphaProd(0)) {}

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions& options) override {
    if (numInferenceSteps_ == 0) throw InvalidArgument("DDIMScheduler.step: call setTimesteps() first");
    const at::Tensor& modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
    expectSameShape(sample, "sample", modelOutput, "modelOutput");
    if (!(options.eta >= 0))
      throw InvalidArgument("Expected a non-negative number for options.eta but received " + std::to_string(options.eta));
    const int64_t t = integerTimestep(timestep);
    // Even with trailing spacing diffusers steps by T / n here, not to the next listed timestep.
    const int64_t prevT = t - config_.numTrainTimesteps / numInferenceSteps_;

    const float alphaProdT = alphaProd(t);
    const float alphaProdTPrev = prevT >= 0 ? alphaProd(prevT) : finalAlphaCumprod_;
    const float betaProdT = 1 - alphaProdT;

    at::Tensor x0, eps;
    switch (config_.predictionType) {
      case PredictionType::Epsilon:
        x0 = (sample - std::sqrt(betaProdT) * modelOutput) / std::sqrt(alphaProdT);
        eps = modelOutput;
        break;
      case PredictionType::Sample:
        x0 = modelOutput;
        eps = (sample - std::sqrt(alphaProdT) * x0) / std::sqrt(betaProdT);
        break;
      case PredictionType::VPrediction:
        x0 = std::sqrt(alphaProdT) * sample - std::sqrt(betaProdT) * modelOutput;
        eps = std::sqrt(alphaProdT) * modelOutput + std::sqrt(betaProdT) * sample;
        break;
    }
    if (config_.thresholding) {
      x0 = thresholdSample(x0);
    } else if (config_.clipSample) {
      x0 = x0.clamp(-config_.clipSampleRange, config_.clipSampleRange);
    }

    // σ_t of eq. 16: eta · sqrt((1 − ᾱ_prev)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_prev)).
    const float betaProdTPrev = 1 - alphaProdTPrev;
    const float variance = (betaProdTPrev / betaProdT) * (1 - alphaProdT / alphaProdTPrev);
    const float stdDevT = static_cast<float>(options.eta) * std::sqrt(variance);

    if (options.useClippedModelOutput) eps = (sample - std::sqrt(alphaProdT) * x0) / std::sqrt(betaProdT);

    at::Tensor direction = std::sqrt(1 - alphaProdTPrev - stdDevT * stdDevT) * eps;
    at::Tensor prev = std::sqrt(alphaProdTPrev) * x0 + direction;
    if (options.eta > 0) prev = prev + stdDevT * stepNoise(modelOutput, options, "DDIMScheduler.step");
    return {wrap(prev), wrap(x0)};
  }

 private:
  const float finalAlphaCumprod_;
};

}  // namespace

std::unique_ptr<Scheduler> makeDDIMScheduler(const SchedulerConfig& config) { return std::make_unique<DDIMScheduler>(config); }

}  // namespace difftune
