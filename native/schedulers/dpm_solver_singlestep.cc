// diffusers' DPMSolverSinglestepScheduler: DPM-Solver / DPM-Solver++ (Lu et al. 2022) in singlestep
// form: the steps are grouped by the order list (1, 2, 3, 1, 2, 3, …), and every update of a group
// starts from the sample at the group's start. Orders 1–3, midpoint/heun, and the SDE variant of
// DPM-Solver++ (orders 1–2), whose noise is drawn at every step as diffusers draws it.
#include <ATen/ATen.h>

#include <cmath>

#include "schedulers/families.h"
#include "schedulers/timestep_spacing.h"
#include "schedulers/vp_solver_base.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

class DPMSolverSinglestepScheduler final : public VpSolverScheduler {
 public:
  explicit DPMSolverSinglestepScheduler(const SchedulerConfig& config)
      : VpSolverScheduler(config, "DPMSolverSinglestepScheduler"), lowerOrderFinal_(config.lowerOrderFinal) {
    if (config.algorithmType == DPMAlgorithm::SDEDPMSolver) {
      throw InvalidArgument("algorithm_type \"sde-dpmsolver\" is not available in DPMSolverSinglestepScheduler (nor in diffusers')");
    }
    if (!isPlusPlus() && config.finalSigmasType == FinalSigmasType::Zero) {
      throw InvalidArgument("final_sigmas_type \"zero\" is not supported with algorithm_type dpmsolver; use \"sigma_min\"");
    }
    if (isSde() && config.solverOrder == 3) {
      throw InvalidArgument("solver_order 3 is not available for algorithm_type sde-dpmsolver++ (diffusers has no third-order SDE update)");
    }
    if (config.algorithmType == DPMAlgorithm::DPMSolver && config.thresholding) {
      throw InvalidArgument("thresholding is not supported with algorithm_type dpmsolver in DPMSolverSinglestepScheduler");
    }
    modelOutputs_.assign(static_cast<size_t>(config.solverOrder), at::Tensor());
  }

  void setTimesteps(int64_t n) override {
    checkStepCount(n);
    const int64_t T = config_.numTrainTimesteps;
    // lambda_min_clipped cuts off the noisiest timesteps: searchsorted over ascending lambda (in float32).
    int64_t clipped = 0;
    const float clip = static_cast<float>(config_.lambdaMinClipped);
    for (int64_t t = T - 1; t >= 0; --t) {
      const float ac = alphaProd(t);
      if (std::log(std::sqrt(ac)) - std::log(std::sqrt(1 - ac)) < clip)
        ++clipped;
      else
        break;
    }
    Grid g = grid(dpmTimesteps(TimestepSpacing::Linspace, T, n, 0, T - clipped), n);
    install(g, config_.finalSigmasType == FinalSigmasType::SigmaMin ? sigmaMinOfTraining() : 0.0f);
    modelOutputs_.assign(static_cast<size_t>(config_.solverOrder), at::Tensor());
    sample_ = at::Tensor();
    // diffusers switches lower_order_final on for good (register_to_config) when the steps do not
    // divide into whole groups, or when the last sigma is zero.
    if (!lowerOrderFinal_ && (n % config_.solverOrder != 0 || config_.finalSigmasType == FinalSigmasType::Zero)) lowerOrderFinal_ = true;
    orders_ = orderList(n);
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions& options) override {
    const int64_t i = currentIndex(timestep);
    const at::Tensor& rawOutput = floatTensorArg(modelOutputArg, "modelOutput");
    const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
    if (i >= static_cast<int64_t>(orders_.size()))
      throw InvalidArgument("DPMSolverSinglestepScheduler.step: the schedule is finished; call setTimesteps() again");

    at::Tensor converted = convert(rawOutput, sample, i);
    for (size_t k = 0; k + 1 < modelOutputs_.size(); ++k) modelOutputs_[k] = modelOutputs_[k + 1];
    modelOutputs_.back() = converted;
    at::Tensor noise;
    if (isSde()) noise = stepNoise(converted, options, "DPMSolverSinglestepScheduler.step");

    int64_t order = orders_[static_cast<size_t>(i)];
    while (!modelOutputs_[modelOutputs_.size() - static_cast<size_t>(order)].defined()) --order;
    if (order == 1) sample_ = sample;
    at::Tensor prev;
    switch (order) {
      case 1: prev = firstOrder(modelOutputs_.back(), sample_, noise, i); break;
      case 2: prev = secondOrder(sample_, noise, i); break;
      default: prev = thirdOrder(sample_, i); break;
    }
    stepIndex_ = i + 1;
    return {wrap(prev), Tensor()};
  }

 private:
  bool isPlusPlus() const {
    return config_.algorithmType == DPMAlgorithm::DPMSolverPP || config_.algorithmType == DPMAlgorithm::SDEDPMSolverPP;
  }
  bool isSde() const { return config_.algorithmType == DPMAlgorithm::SDEDPMSolverPP; }

  std::vector<int64_t> orderList(int64_t steps) const {
    const int64_t order = config_.solverOrder;
    std::vector<int64_t> orders;
    auto repeat = [&](std::vector<int64_t> pattern, int64_t times) {
      for (int64_t k = 0; k < times; ++k) orders.insert(orders.end(), pattern.begin(), pattern.end());
    };
    if (lowerOrderFinal_) {
      if (order == 3) {
        if (steps % 3 == 0) {
          repeat({1, 2, 3}, steps / 3 - 1);
          repeat({1, 2, 1}, 1);
        } else if (steps % 3 == 1) {
          repeat({1, 2, 3}, steps / 3);
          repeat({1}, 1);
        } else {
          repeat({1, 2, 3}, steps / 3);
          repeat({1, 2}, 1);
        }
      } else if (order == 2) {
        if (steps % 2 == 0) {
          repeat({1, 2}, steps / 2 - 1);
          repeat({1, 1}, 1);
        } else {
          repeat({1, 2}, steps / 2);
          repeat({1}, 1);
        }
      } else {
        repeat({1}, steps);
      }
    } else if (order == 3) {
      repeat({1, 2, 3}, steps / 3);
    } else if (order == 2) {
      repeat({1, 2}, steps / 2);
    } else {
      repeat({1}, steps);
    }
    return orders;
  }

  // x0 for the ++ variants, epsilon for dpmsolver.
  at::Tensor convert(const at::Tensor& modelOutput, const at::Tensor& sample, int64_t i) const {
    const bool learned = config_.dpmVarianceType != DPMVarianceType::None;
    if (isPlusPlus()) return predictX0(modelOutput, sample, i, learned);
    const VpAlphaSigma s = at(i);
    switch (config_.predictionType) {
      case PredictionType::Epsilon: return learned ? modelOutput.slice(1, 0, 3) : modelOutput;
      case PredictionType::Sample: return (sample - s.alpha * modelOutput) / s.sigma;
      case PredictionType::VPrediction: return s.alpha * modelOutput + s.sigma * sample;
    }
    throw std::logic_error("prediction type out of range");
  }

  at::Tensor firstOrder(const at::Tensor& m, const at::Tensor& sample, const at::Tensor& noise, int64_t i) const {
    const VpAlphaSigma t = at(i + 1), s = at(i);
    const float h = t.lambda() - s.lambda();
    switch (config_.algorithmType) {
      case DPMAlgorithm::DPMSolverPP: return (t.sigma / s.sigma) * sample - (t.alpha * (std::exp(-h) - 1.0f)) * m;
      case DPMAlgorithm::DPMSolver: return (t.alpha / s.alpha) * sample - (t.sigma * (std::exp(h) - 1.0f)) * m;
      case DPMAlgorithm::SDEDPMSolverPP:
        return (t.sigma / s.sigma * std::exp(-h)) * sample + (t.alpha * (1 - std::exp(-2.0f * h))) * m +
               t.sigma * std::sqrt(1.0f - std::exp(-2 * h)) * noise;
      case DPMAlgorithm::SDEDPMSolver: break;
    }
    throw std::logic_error("algorithm type out of range");
  }

  at::Tensor secondOrder(const at::Tensor& sample, const at::Tensor& noise, int64_t i) const {
    const VpAlphaSigma t = at(i + 1), s0 = at(i), s1 = at(i - 1);
    const size_t last = modelOutputs_.size() - 1;
    const at::Tensor &m0 = modelOutputs_[last], &m1 = modelOutputs_[last - 1];
    const float h = t.lambda() - s1.lambda();
    const float h0 = s0.lambda() - s1.lambda();
    const float r0 = h0 / h;
    const at::Tensor& d0 = m1;
    const at::Tensor d1 = (1.0f / r0) * (m0 - m1);
    const bool midpoint = config_.solverType == DPMSolverType::Midpoint;
    switch (config_.algorithmType) {
      case DPMAlgorithm::DPMSolverPP:
        if (midpoint) {
          return (t.sigma / s1.sigma) * sample - (t.alpha * (std::exp(-h) - 1.0f)) * d0 - 0.5f * (t.alpha * (std::exp(-h) - 1.0f)) * d1;
        }
        return (t.sigma / s1.sigma) * sample - (t.alpha * (std::exp(-h) - 1.0f)) * d0 + (t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f)) * d1;
      case DPMAlgorithm::DPMSolver:
        if (midpoint) {
          return (t.alpha / s1.alpha) * sample - (t.sigma * (std::exp(h) - 1.0f)) * d0 - 0.5f * (t.sigma * (std::exp(h) - 1.0f)) * d1;
        }
        return (t.alpha / s1.alpha) * sample - (t.sigma * (std::exp(h) - 1.0f)) * d0 - (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f)) * d1;
      case DPMAlgorithm::SDEDPMSolverPP: {
        at::Tensor x = (t.sigma / s1.sigma * std::exp(-h)) * sample + (t.alpha * (1 - std::exp(-2.0f * h))) * d0;
        x = midpoint ? x + 0.5f * (t.alpha * (1 - std::exp(-2.0f * h))) * d1
                     : x + (t.alpha * ((1.0f - std::exp(-2.0f * h)) / (-2.0f * h) + 1.0f)) * d1;
        return x + t.sigma * std::sqrt(1.0f - std::exp(-2 * h)) * noise;
      }
      case DPMAlgorithm::SDEDPMSolver: break;
    }
    throw std::logic_error("algorithm type out of range");
  }

  at::Tensor thirdOrder(const at::Tensor& sample, int64_t i) const {
    const VpAlphaSigma t = at(i + 1), s0 = at(i), s1 = at(i - 1), s2 = at(i - 2);
    const size_t last = modelOutputs_.size() - 1;
    const at::Tensor &m0 = modelOutputs_[last], &m1 = modelOutputs_[last - 1], &m2 = modelOutputs_[last - 2];
    const float h = t.lambda() - s2.lambda();
    const float h0 = s0.lambda() - s2.lambda();
    const float h1 = s1.lambda() - s2.lambda();
    const float r0 = h0 / h, r1 = h1 / h;
    const at::Tensor& d0 = m2;
    const at::Tensor d10 = (1.0f / r1) * (m1 - m2);
    const at::Tensor d11 = (1.0f / r0) * (m0 - m2);
    const at::Tensor d1 = (r0 * d10 - r1 * d11) / (r0 - r1);
    const at::Tensor d2 = 2.0f * (d11 - d10) / (r0 - r1);
    const bool midpoint = config_.solverType == DPMSolverType::Midpoint;
    if (isPlusPlus()) {
      at::Tensor x = (t.sigma / s2.sigma) * sample - (t.alpha * (std::exp(-h) - 1.0f)) * d0;
      if (midpoint) return x + (t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f)) * d11;
      return x + (t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f)) * d1 - (t.alpha * ((std::exp(-h) - 1.0f + h) / (h * h) - 0.5f)) * d2;
    }
    at::Tensor x = (t.alpha / s2.alpha) * sample - (t.sigma * (std::exp(h) - 1.0f)) * d0;
    if (midpoint) return x - (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f)) * d11;
    return x - (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f)) * d1 - (t.sigma * ((std::exp(h) - 1.0f - h) / (h * h) - 0.5f)) * d2;
  }

  bool lowerOrderFinal_;
  std::vector<int64_t> orders_;
  std::vector<at::Tensor> modelOutputs_;
  at::Tensor sample_;
};

}  // namespace

std::unique_ptr<Scheduler> makeDPMSolverSinglestepScheduler(const SchedulerConfig& config) {
  return std::make_unique<DPMSolverSinglestepScheduler>(config);
}

}  // namespace difftune
