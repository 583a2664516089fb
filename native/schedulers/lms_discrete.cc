// diffusers' LMSDiscreteScheduler: linear multistep in sigma space (k-diffusion's sample_lms), up to
// 4 previous derivatives d_k = (x − x0_k)/σ_k weighted by ∫ of their Lagrange basis polynomials over
// [σ_i, σ_{i+1}]. diffusers integrates with scipy.integrate.quad (epsrel 1e-4) and evaluates the
// polynomial in float32 torch arithmetic; here the same float32 polynomial goes through the same
// 21-point Gauss–Kronrod rule quad applies first (quadrature.h says why that reproduces quad).
#include <ATen/ATen.h>

#include <cmath>
#include <deque>

#include "schedulers/families.h"
#include "schedulers/quadrature.h"
#include "schedulers/sigma_scheduler_base.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

constexpr int64_t kLmsOrder = 4;

class LMSDiscreteScheduler final : public SigmaScheduler {
 public:
  explicit LMSDiscreteScheduler(const SchedulerConfig& config) : SigmaScheduler(config, "LMSDiscreteScheduler") {
    // diffusers' constructor runs set_timesteps(num_train_timesteps).
    setTimesteps(config.numTrainTimesteps);
    numInferenceSteps_ = 0;
  }

  void setTimesteps(int64_t n) override {
    checkStepCount(n);
    Grid grid = inferenceGrid(n, false);
    timesteps_ = grid.timesteps;
    float64Timesteps_ = grid.float64Timesteps;
    sigmas_.clear();
    for (double s : grid.sigmas) sigmas_.push_back(static_cast<float>(s));
    sigmas_.push_back(0.0f);
    numInferenceSteps_ = n;
    stepIndex_.reset();
    derivatives_.clear();
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions&) override {
    const at::Tensor& modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
    expectSameShape(sample, "sample", modelOutput, "modelOutput");
    const int64_t i = currentIndex(timestep);
    const float sigma = sigmaAt(i);
    sigmaAt(i + 1);

    at::Tensor x0 = predictOriginal(modelOutput, sample, sigma);
    derivatives_.push_back((sample - x0) / sigma);
    if (static_cast<int64_t>(derivatives_.size()) > kLmsOrder) derivatives_.pop_front();

    const int64_t order = std::min(i + 1, kLmsOrder);
    // Python's sum(): coefficient k goes with the k-th newest derivative.
    at::Tensor sum;
    for (int64_t k = 0; k < order; ++k) {
      const at::Tensor& d = derivatives_[derivatives_.size() - 1 - static_cast<size_t>(k)];
      at::Tensor term = lmsCoefficient(order, i, k) * d;
      sum = sum.defined() ? sum + term : term;
    }
    at::Tensor prev = sample + sum;
    stepIndex_ = i + 1;
    return {wrap(prev), wrap(x0)};
  }

 private:
  // ∫_{σ_t}^{σ_{t+1}} ∏_{k≠current} (τ − σ_{t−k}) / (σ_{t−current} − σ_{t−k}) dτ, the integrand in float32.
  double lmsCoefficient(int64_t order, int64_t t, int64_t current) const {
    auto basis = [&](double tau) -> double {
      bool any = false;
      float prod = 1.0f;
      for (int64_t k = 0; k < order; ++k) {
        if (k == current) continue;
        const float sk = sigmas_[static_cast<size_t>(t - k)];
        const float factor = (static_cast<float>(tau) - sk) / (sigmas_[static_cast<size_t>(t - current)] - sk);
        prod = any ? prod * factor : factor;
        any = true;
      }
      return static_cast<double>(prod);
    };
    const double a = sigmas_[static_cast<size_t>(t)], b = sigmas_[static_cast<size_t>(t + 1)];
    return integrateGK21(basis, a, b, 1.49e-8, 1e-4).value;
  }

  std::deque<at::Tensor> derivatives_;
};

}  // namespace

std::unique_ptr<Scheduler> makeLMSDiscreteScheduler(const SchedulerConfig& config) {
  return std::make_unique<LMSDiscreteScheduler>(config);
}

}  // namespace difftune
