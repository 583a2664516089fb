// diffusers' HeunDiscreteScheduler (Karras et al. 2022, Algorithm 1 without churn): each inference
// step is two model evaluations, so timesteps and sigmas repeat every entry after the first; an Euler
// step to σ_{i+1} (first order), then the average of both derivatives applied from the saved sample
// (second order).
#include <ATen/ATen.h>

#include <cmath>
#include <optional>

#include "schedulers/families.h"
#include "schedulers/sigma_scheduler_base.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

// [a0, a1, a2, …, a_last] → [a0, a1, a1, a2, a2, …, a_last, a_last] (torch.cat with repeat_interleave).
template <typename T>
std::vector<T> repeatAfterFirst(const std::vector<T>& v) {
  std::vector<T> out;
  if (v.empty()) return out;
  out.push_back(v.front());
  for (size_t i = 1; i < v.size(); ++i) {
    out.push_back(v[i]);
    out.push_back(v[i]);
  }
  return out;
}

class HeunDiscreteScheduler final : public SigmaScheduler {
 public:
  explicit HeunDiscreteScheduler(const SchedulerConfig& config) : SigmaScheduler(config, "HeunDiscreteScheduler") {
    setTimesteps(config.numTrainTimesteps);
    numInferenceSteps_ = 0;
  }

  void setTimesteps(int64_t n) override {
    checkStepCount(n);
    Grid grid = inferenceGrid(n, false);
    std::vector<float> sigmas;
    for (double s : grid.sigmas) sigmas.push_back(static_cast<float>(s));
    // cat([σ0], σ[1:-1] twice each, [σ_last]) where σ_last is the appended 0: here σ0, then every other
    // σ twice, then 0.
    sigmas_ = repeatAfterFirst(sigmas);
    sigmas_.push_back(0.0f);
    timesteps_ = repeatAfterFirst(grid.timesteps);
    float64Timesteps_ = grid.float64Timesteps;
    numInferenceSteps_ = n;
    stepIndex_.reset();
    dt_.reset();
    prevDerivative_ = at::Tensor();
    sample_ = at::Tensor();
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions&) override {
    const at::Tensor& modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    at::Tensor sample = floatTensorArg(sampleArg, "sample");
    expectSameShape(sample, "sample", modelOutput, "modelOutput");
    const int64_t i = currentIndex(timestep);
    const bool firstOrder = !dt_.has_value();
    const float sigma = firstOrder ? sigmaAt(i) : sigmaAt(i - 1);
    const float sigmaNext = firstOrder ? sigmaAt(i + 1) : sigmaAt(i);

    at::Tensor x0 = predictOriginal(modelOutput, sample, firstOrder ? sigma : sigmaNext);
    if (config_.clipSample) x0 = x0.clamp(-config_.clipSampleRange, config_.clipSampleRange);

    at::Tensor derivative;
    float dt;
    if (firstOrder) {
      derivative = (sample - x0) / sigma;
      dt = sigmaNext - sigma;
      prevDerivative_ = derivative;
      dt_ = dt;
      sample_ = sample;
    } else {
      derivative = (sample - x0) / sigmaNext;
      derivative = (prevDerivative_ + derivative) / 2;
      dt = *dt_;
      sample = sample_;
      prevDerivative_ = at::Tensor();
      dt_.reset();
      sample_ = at::Tensor();
    }
    at::Tensor prev = sample + derivative * dt;
    stepIndex_ = i + 1;
    return {wrap(prev), wrap(x0)};
  }

 private:
  std::optional<float> dt_;
  at::Tensor prevDerivative_;
  at::Tensor sample_;
};

}  // namespace

std::unique_ptr<Scheduler> makeHeunDiscreteScheduler(const SchedulerConfig& config) {
  return std::make_unique<HeunDiscreteScheduler>(config);
}

}  // namespace difftune
