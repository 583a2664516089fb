// diffusers' EulerAncestralDiscreteScheduler: an Euler step down to σ_down, then fresh noise of
// standard deviation σ_up (k-diffusion's sample_euler_ancestral), with
// σ_up = sqrt(σ_to² (σ_from² − σ_to²) / σ_from²) and σ_down = sqrt(σ_to² − σ_up²). Every step draws
// its noise (randn of the model output's shape), the last one too, as diffusers does, so a seeded
// generator gives the same stream.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "schedulers/families.h"
#include "schedulers/numpy_compat.h"
#include "schedulers/sigma_scheduler_base.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

class EulerAncestralDiscreteScheduler final : public SigmaScheduler {
 public:
  explicit EulerAncestralDiscreteScheduler(const SchedulerConfig& config) : SigmaScheduler(config, "EulerAncestralDiscreteScheduler") {
    if (config.predictionType == PredictionType::Sample) {
      throw InvalidArgument("prediction_type \"sample\" is not supported by EulerAncestralDiscreteScheduler (nor by diffusers')");
    }
    if (config.rescaleBetasZeroSnr) clampTerminalAlphaCumprod();
    // Before setTimesteps: every training timestep, float64, and the training sigmas descending.
    const int64_t n = config.numTrainTimesteps;
    timesteps_ = npLinspace(0, static_cast<double>(n - 1), n);
    std::reverse(timesteps_.begin(), timesteps_.end());
    float64Timesteps_ = true;
    std::vector<float> full = trainingSigmas();
    sigmas_.assign(full.rbegin(), full.rend());
    sigmas_.push_back(0.0f);
  }

  void setTimesteps(int64_t n) override {
    checkStepCount(n);
    Grid grid = inferenceGrid(n, false);
    timesteps_ = grid.timesteps;
    float64Timesteps_ = false;
    sigmas_.clear();
    for (double s : grid.sigmas) sigmas_.push_back(static_cast<float>(s));
    sigmas_.push_back(0.0f);
    numInferenceSteps_ = n;
    stepIndex_.reset();
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions& options) override {
    const at::Tensor& modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    at::Tensor sample = floatTensorArg(sampleArg, "sample");
    expectSameShape(sample, "sample", modelOutput, "modelOutput");
    const int64_t i = currentIndex(timestep);
    const float sigma = sigmaAt(i);
    const float sigmaTo = sigmaAt(i + 1);

    sample = sample.to(at::kFloat);
    at::Tensor x0 = predictOriginal(modelOutput, sample, sigma);
    const float sigmaUp = std::sqrt(sigmaTo * sigmaTo * (sigma * sigma - sigmaTo * sigmaTo) / (sigma * sigma));
    const float sigmaDown = std::sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
    at::Tensor derivative = (sample - x0) / sigma;
    const float dt = sigmaDown - sigma;
    at::Tensor prev = sample + derivative * dt;
    at::Tensor noise = stepNoise(modelOutput, options, "EulerAncestralDiscreteScheduler.step");
    prev = (prev + noise * sigmaUp).to(modelOutput.scalar_type());
    stepIndex_ = i + 1;
    return {wrap(prev), wrap(x0)};
  }
};

}  // namespace

std::unique_ptr<Scheduler> makeEulerAncestralDiscreteScheduler(const SchedulerConfig& config) {
  return std::make_unique<EulerAncestralDiscreteScheduler>(config);
}

}  // namespace difftune
