// diffusers' UniPCMultistepScheduler (Zhao et al. 2023): a multistep predictor (UniP) and, from the
// second step on, a corrector (UniC) that reuses the new model evaluation, in the data (predict_x0)
// or noise parametrisation, with B(h) = h (bh1) or e^h − 1 (bh2). The order-k coefficients solve
// diffusers' small linear systems with torch.linalg.solve in float32, and the history is combined with
// the same einsum, so the arithmetic is diffusers' operation for operation.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "schedulers/families.h"
#include "schedulers/timestep_spacing.h"
#include "schedulers/vp_solver_base.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

// The coefficient system of one UniP/UniC update: rks (the history's relative log-SNR steps, then 1),
// R = [rks^0; rks^1; …] and b.
struct UniSystem {
  at::Tensor rks;
  at::Tensor R;
  at::Tensor b;
  float hPhi1;
  float Bh;
};

class UniPCMultistepScheduler final : public VpSolverScheduler {
 public:
  explicit UniPCMultistepScheduler(const SchedulerConfig& config) : VpSolverScheduler(config, "UniPCMultistepScheduler") {
    modelOutputs_.assign(static_cast<size_t>(config.solverOrder), at::Tensor());
  }

  void setTimesteps(int64_t n) override {
    checkStepCount(n);
    const int64_t T = config_.numTrainTimesteps;
    Grid g = grid(dpmTimesteps(config_.timestepSpacing, T, n, config_.stepsOffset, T), n);
    float last = 0.0f;
    if (config_.finalSigmasType == FinalSigmasType::SigmaMin) {
      last = config_.useKarrasSigmas ? static_cast<float>(g.sigmas.back()) : sigmaMinOfTraining();
    }
    install(g, last);
    modelOutputs_.assign(static_cast<size_t>(config_.solverOrder), at::Tensor());
    lowerOrderNums_ = 0;
    lastSample_ = at::Tensor();
    thisOrder_ = 0;
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions&) override {
    const int64_t i = currentIndex(timestep);
    const at::Tensor& modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    at::Tensor sample = floatTensorArg(sampleArg, "sample");
    expectSameShape(sample, "sample", modelOutput, "modelOutput");

    const bool disabled =
        std::find(config_.disableCorrector.begin(), config_.disableCorrector.end(), i - 1) != config_.disableCorrector.end();
    const bool useCorrector = i > 0 && !disabled && lastSample_.defined();
    at::Tensor converted = convert(modelOutput, sample, i);
    if (useCorrector) sample = corrector(converted, lastSample_, sample, thisOrder_, i);

    for (size_t k = 0; k + 1 < modelOutputs_.size(); ++k) modelOutputs_[k] = modelOutputs_[k + 1];
    modelOutputs_.back() = converted;

    const int64_t count = static_cast<int64_t>(timesteps_.size());
    int64_t order = config_.lowerOrderFinal ? std::min(config_.solverOrder, count - i) : config_.solverOrder;
    thisOrder_ = std::min(order, lowerOrderNums_ + 1);
    lastSample_ = sample;
    at::Tensor prev = predictor(sample, thisOrder_, i);
    if (lowerOrderNums_ < config_.solverOrder) ++lowerOrderNums_;
    stepIndex_ = i + 1;
    return {wrap(prev), Tensor()};
  }

 private:
  // x0 (predict_x0) or epsilon, as the solver consumes the model output.
  at::Tensor convert(const at::Tensor& modelOutput, const at::Tensor& sample, int64_t i) const {
    if (config_.predictX0) return predictX0(modelOutput, sample, i);
    const VpAlphaSigma s = at(i);
    switch (config_.predictionType) {
      case PredictionType::Epsilon: return modelOutput;
      case PredictionType::Sample: return (sample - s.alpha * modelOutput) / s.sigma;
      case PredictionType::VPrediction: return s.alpha * modelOutput + s.sigma * sample;
    }
    throw std::logic_error("prediction type out of range");
  }

  // rks, R and b for an update of `order` from σ_{s0} to σ_t, with history sigmas at `historyIndex(k)`.
  template <typename HistoryIndex>
  UniSystem system(int64_t order, float h, float lambdaS0, HistoryIndex historyIndex, std::vector<at::Tensor>& d1s,
                   const at::Tensor& m0) const {
    std::vector<float> rks;
    for (int64_t k = 1; k < order; ++k) {
      const at::Tensor& mk = modelOutputs_[modelOutputs_.size() - 1 - static_cast<size_t>(k)];
      const float rk = (at(historyIndex(k)).lambda() - lambdaS0) / h;
      rks.push_back(rk);
      d1s.push_back((mk - m0) / rk);
    }
    rks.push_back(1.0f);
    const float hh = config_.predictX0 ? -h : h;
    const float hPhi1 = std::expm1(hh);
    float hPhiK = hPhi1 / hh - 1;
    int64_t factorial = 1;
    const float Bh = config_.uniPCSolverType == UniPCSolverType::BH1 ? hh : std::expm1(hh);
    at::Tensor rksT = at::tensor(rks, at::kFloat);
    std::vector<at::Tensor> R;
    std::vector<float> b;
    for (int64_t k = 1; k <= order; ++k) {
      R.push_back(at::pow(rksT, k - 1));
      b.push_back(hPhiK * static_cast<float>(factorial) / Bh);
      factorial *= k + 1;
      hPhiK = hPhiK / hh - static_cast<float>(1.0 / static_cast<double>(factorial));
    }
    return {rksT, at::stack(R), at::tensor(b, at::kFloat), hPhi1, Bh};
  }

  // Σ_k rhos[k] · D1s[k] as diffusers' einsum("k,bkc...->bc..."); the coefficients are solved on the CPU and
  // join the samples on their device.
  static at::Tensor combine(const at::Tensor& rhos, const std::vector<at::Tensor>& d1s) {
    return at::einsum("k,bkc...->bc...", {rhos.to(d1s.front().device()), at::stack(d1s, 1)});
  }

  // The update's first part, x_t_ (shared by predictor and corrector).
  at::Tensor base(const at::Tensor& x, const VpAlphaSigma& t, const VpAlphaSigma& s0, float hPhi1, const at::Tensor& m0) const {
    if (config_.predictX0) return (t.sigma / s0.sigma) * x - (t.alpha * hPhi1) * m0;
    return (t.alpha / s0.alpha) * x - (t.sigma * hPhi1) * m0;
  }

  float scale(const VpAlphaSigma& t, float Bh) const { return config_.predictX0 ? t.alpha * Bh : t.sigma * Bh; }

  at::Tensor predictor(const at::Tensor& x, int64_t order, int64_t i) const {
    const at::Tensor& m0 = modelOutputs_.back();
    const VpAlphaSigma t = at(i + 1), s0 = at(i);
    const float lambdaS0 = s0.lambda();
    const float h = t.lambda() - lambdaS0;
    std::vector<at::Tensor> d1s;
    UniSystem sys = system(
        order, h, lambdaS0, [i](int64_t k) { return i - k; }, d1s, m0);
    at::Tensor xt = base(x, t, s0, sys.hPhi1, m0);
    if (d1s.empty()) {
      // diffusers subtracts (α_t·B_h)·0: a number, NaN when α_t·B_h is infinite.
      return (xt - scale(t, sys.Bh) * 0.0f).to(x.scalar_type());
    }
    at::Tensor rhos = order == 2 ? at::tensor(std::vector<float>{0.5f}, at::kFloat)
                                 : at::linalg_solve(sys.R.slice(0, 0, -1).slice(1, 0, -1), sys.b.slice(0, 0, -1)).to(x.scalar_type());
    return (xt - scale(t, sys.Bh) * combine(rhos, d1s)).to(x.scalar_type());
  }

  at::Tensor corrector(const at::Tensor& modelT, const at::Tensor& x, const at::Tensor& xt, int64_t order, int64_t i) const {
    const at::Tensor& m0 = modelOutputs_.back();
    const VpAlphaSigma t = at(i), s0 = at(i - 1);
    const float lambdaS0 = s0.lambda();
    const float h = t.lambda() - lambdaS0;
    std::vector<at::Tensor> d1s;
    UniSystem sys = system(
        order, h, lambdaS0, [i](int64_t k) { return i - (k + 1); }, d1s, m0);
    at::Tensor rhos = order == 1 ? at::tensor(std::vector<float>{0.5f}, at::kFloat) : at::linalg_solve(sys.R, sys.b).to(xt.scalar_type());
    at::Tensor out = base(x, t, s0, sys.hPhi1, m0);
    at::Tensor d1t = modelT - m0;
    at::Tensor last = rhos[-1].to(d1t.device()) * d1t;
    at::Tensor corr = d1s.empty() ? last : combine(rhos.slice(0, 0, -1), d1s) + last;
    return (out - scale(t, sys.Bh) * corr).to(x.scalar_type());
  }

  std::vector<at::Tensor> modelOutputs_;
  int64_t lowerOrderNums_ = 0;
  at::Tensor lastSample_;
  int64_t thisOrder_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> makeUniPCMultistepScheduler(const SchedulerConfig& config) {
  return std::make_unique<UniPCMultistepScheduler>(config);
}

}  // namespace difftune
