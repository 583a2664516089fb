// diffusers' DDPMScheduler (Ho et al. 2020): ancestral sampling with the posterior variance.
#include <ATen/ATen.h>

#include <cmath>

#include "schedulers/families.h"
#include "schedulers/scheduler_base.h"
#include "schedulers/timestep_spacing.h"
#include "tensor/failure.h"
#include "tensor/shape_text.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

class DDPMScheduler final : public IntegerTimestepScheduler {
 public:
  explicit DDPMScheduler(const SchedulerConfig& config) : IntegerTimestepScheduler(config) {}

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions& options) override {
    at::Tensor modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
    const int64_t t = integerTimestep(timestep);
    const int64_t prevT = t - config_.numTrainTimesteps / (numInferenceSteps_ > 0 ? numInferenceSteps_ : config_.numTrainTimesteps);

    const bool learned =
        config_.ddpmVarianceType == DDPMVarianceType::Learned || config_.ddpmVarianceType == DDPMVarianceType::LearnedRange;
    at::Tensor predictedVariance;
    if (learned && modelOutput.dim() >= 2 && sample.dim() >= 2 && modelOutput.size(1) == sample.size(1) * 2) {
      auto parts = at::split(modelOutput, sample.size(1), 1);
      modelOutput = parts[0];
      predictedVariance = parts[1];
    } else if (learned) {
      throw InvalidArgument("Expected modelOutput with twice the channels of sample (prediction and variance) for variance_type " +
                            std::string(config_.ddpmVarianceType == DDPMVarianceType::Learned ? "learned" : "learned_range") +
                            " but received shape " + shapeText(modelOutput) + " for sample " + shapeText(sample));
    }
    expectSameShape(sample, "sample", modelOutput, "modelOutput");

    // Scalars in float32, as diffusers computes them on 0-d float32 tensors.
    const float alphaProdT = alphaProd(t);
    const float alphaProdTPrev = prevT >= 0 ? alphaProd(prevT) : 1.0f;
    const float betaProdT = 1 - alphaProdT;
    const float betaProdTPrev = 1 - alphaProdTPrev;
    const float currentAlphaT = alphaProdT / alphaProdTPrev;
    const float currentBetaT = 1 - currentAlphaT;

    at::Tensor x0;
    switch (config_.predictionType) {
      case PredictionType::Epsilon: x0 = (sample - std::sqrt(betaProdT) * modelOutput) / std::sqrt(alphaProdT); break;
      case PredictionType::Sample: x0 = modelOutput; break;
      case PredictionType::VPrediction: x0 = std::sqrt(alphaProdT) * sample - std::sqrt(betaProdT) * modelOutput; break;
    }
    if (config_.thresholding) {
      x0 = thresholdSample(x0);
    } else if (config_.clipSample) {
      x0 = x0.clamp(-config_.clipSampleRange, config_.clipSampleRange);
    }

    // Posterior mean coefficients (Ho et al. 2020, eq. 7).
    const float x0Coeff = (std::sqrt(alphaProdTPrev) * currentBetaT) / betaProdT;
    const float sampleCoeff = std::sqrt(currentAlphaT) * betaProdTPrev / betaProdT;
    at::Tensor prev = x0Coeff * x0 + sampleCoeff * sample;

    if (t > 0) {
      at::Tensor noise = stepNoise(modelOutput, options, "DDPMScheduler.step");
      float variance = (1 - alphaProdTPrev) / (1 - alphaProdT) * currentBetaT;
      variance = std::max(variance, 1e-20f);
      switch (config_.ddpmVarianceType) {
        case DDPMVarianceType::FixedSmall: prev = prev + std::sqrt(variance) * noise; break;
        case DDPMVarianceType::FixedSmallLog: prev = prev + std::exp(0.5f * std::log(variance)) * noise; break;
        case DDPMVarianceType::FixedLarge: prev = prev + std::sqrt(currentBetaT) * noise; break;
        case DDPMVarianceType::Learned: prev = prev + at::pow(predictedVariance, 0.5) * noise; break;
        case DDPMVarianceType::LearnedRange: {
          const float minLog = std::log(variance);
          const float maxLog = std::log(currentBetaT);
          at::Tensor frac = (predictedVariance + 1) / 2;
          at::Tensor logVariance = frac * maxLog + (1 - frac) * minLog;
          prev = prev + at::exp(0.5 * logVariance) * noise;
          break;
        }
      }
    }
    return {wrap(prev), wrap(x0)};
  }
};

}  // namespace

std::unique_ptr<Scheduler> makeDDPMScheduler(const SchedulerConfig& config) { return std::make_unique<DDPMScheduler>(config); }

}  // namespace difftune
