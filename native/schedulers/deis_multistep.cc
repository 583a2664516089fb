// diffusers' DEISMultistepScheduler (Zhang & Chen 2022, the log-rho multistep "deis" variant):
// exponential-integrator steps in epsilon over ρ = σ_t/α_t, orders 1–3, with the polynomial
// extrapolation integrated in closed form (diffusers' ind_fn), in float32 like diffusers.
#include <ATen/ATen.h>

#include <cmath>

#include "schedulers/families.h"
#include "schedulers/timestep_spacing.h"
#include "schedulers/vp_solver_base.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

// ∫ of the order-2 Lagrange basis in log ρ, as diffusers' second-order ind_fn(t, b, c).
float indFn2(float t, float b, float c) { return t * (-std::log(c) + std::log(t) - 1) / (std::log(b) - std::log(c)); }

// diffusers' third-order ind_fn(t, b, c, d).
float indFn3(float t, float b, float c, float d) {
  const float lt = std::log(t), lb = std::log(b), lc = std::log(c), ld = std::log(d);
  const float numerator = t * (lc * (ld - lt + 1) - ld * lt + ld + lt * lt - 2 * lt + 2);
  const float denominator = (lb - lc) * (lb - ld);
  return numerator / denominator;
}

class DEISMultistepScheduler final : public VpSolverScheduler {
 public:
  explicit DEISMultistepScheduler(const SchedulerConfig& config) : VpSolverScheduler(config, "DEISMultistepScheduler") {
    modelOutputs_.assign(static_cast<size_t>(config.solverOrder), at::Tensor());
  }

  void setTimesteps(int64_t n) override {
    checkStepCount(n);
    const int64_t T = config_.numTrainTimesteps;
    Grid g = grid(dpmTimesteps(config_.timestepSpacing, T, n, config_.stepsOffset, T), n);
    // DEIS always ends at a nonzero sigma: the last Karras one again, or the training schedule's smallest.
    install(g, config_.useKarrasSigmas ? static_cast<float>(g.sigmas.back()) : sigmaMinOfTraining());
    modelOutputs_.assign(static_cast<size_t>(config_.solverOrder), at::Tensor());
    lowerOrderNums_ = 0;
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions&) override {
    const int64_t i = currentIndex(timestep);
    const at::Tensor& modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
    expectSameShape(sample, "sample", modelOutput, "modelOutput");
    const int64_t count = static_cast<int64_t>(timesteps_.size());
    const bool lowerOrderFinal = i == count - 1 && config_.lowerOrderFinal && count < 15;
    const bool lowerOrderSecond = i == count - 2 && config_.lowerOrderFinal && count < 15;

    // The solver works in epsilon, recomputed from the (thresholded) x0.
    const VpAlphaSigma s = at(i);
    at::Tensor eps = (sample - s.alpha * predictX0(modelOutput, sample, i)) / s.sigma;
    for (size_t k = 0; k + 1 < modelOutputs_.size(); ++k) modelOutputs_[k] = modelOutputs_[k + 1];
    modelOutputs_.back() = eps;

    at::Tensor prev;
    if (config_.solverOrder == 1 || lowerOrderNums_ < 1 || lowerOrderFinal) {
      prev = firstOrder(eps, sample, i);
    } else if (config_.solverOrder == 2 || lowerOrderNums_ < 2 || lowerOrderSecond) {
      prev = secondOrder(sample, i);
    } else {
      prev = thirdOrder(sample, i);
    }
    if (lowerOrderNums_ < config_.solverOrder) ++lowerOrderNums_;
    stepIndex_ = i + 1;
    return {wrap(prev), Tensor()};
  }

 private:
  at::Tensor firstOrder(const at::Tensor& eps, const at::Tensor& sample, int64_t i) const {
    const VpAlphaSigma t = at(i + 1), s = at(i);
    const float h = t.lambda() - s.lambda();
    return (t.alpha / s.alpha) * sample - (t.sigma * (std::exp(h) - 1.0f)) * eps;
  }

  at::Tensor secondOrder(const at::Tensor& sample, int64_t i) const {
    const VpAlphaSigma t = at(i + 1), s0 = at(i), s1 = at(i - 1);
    const size_t last = modelOutputs_.size() - 1;
    const at::Tensor &m0 = modelOutputs_[last], &m1 = modelOutputs_[last - 1];
    const float rt = t.sigma / t.alpha, r0 = s0.sigma / s0.alpha, r1 = s1.sigma / s1.alpha;
    const float coef1 = indFn2(rt, r0, r1) - indFn2(r0, r0, r1);
    const float coef2 = indFn2(rt, r1, r0) - indFn2(r0, r1, r0);
    return t.alpha * (sample / s0.alpha + coef1 * m0 + coef2 * m1);
  }

  at::Tensor thirdOrder(const at::Tensor& sample, int64_t i) const {
    const VpAlphaSigma t = at(i + 1), s0 = at(i), s1 = at(i - 1), s2 = at(i - 2);
    const size_t last = modelOutputs_.size() - 1;
    const at::Tensor &m0 = modelOutputs_[last], &m1 = modelOutputs_[last - 1], &m2 = modelOutputs_[last - 2];
    const float rt = t.sigma / t.alpha, r0 = s0.sigma / s0.alpha, r1 = s1.sigma / s1.alpha, r2 = s2.sigma / s2.alpha;
    const float coef1 = indFn3(rt, r0, r1, r2) - indFn3(r0, r0, r1, r2);
    const float coef2 = indFn3(rt, r1, r2, r0) - indFn3(r0, r1, r2, r0);
    const float coef3 = indFn3(rt, r2, r0, r1) - indFn3(r0, r2, r0, r1);
    return t.alpha * (sample / s0.alpha + coef1 * m0 + coef2 * m1 + coef3 * m2);
  }

  std::vector<at::Tensor> modelOutputs_;
  int64_t lowerOrderNums_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> makeDEISMultistepScheduler(const SchedulerConfig& config) {
  return std::make_unique<DEISMultistepScheduler>(config);
}

}  // namespace difftune
