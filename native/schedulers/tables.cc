#include "schedulers/tables.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tensor/failure.h"

namespace difftune {

namespace {

// diffusers' betas_for_alpha_bar with the cosine alpha_bar (Nichol & Dhariwal 2021), in Python floats.
at::Tensor squaredcosCapV2(int64_t n) {
  constexpr double kMaxBeta = 0.999;
  auto alphaBar = [](double t) {
    double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
  };
  std::vector<float> betas(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double t1 = static_cast<double>(i) / static_cast<double>(n);
    double t2 = static_cast<double>(i + 1) / static_cast<double>(n);
    betas[static_cast<size_t>(i)] = static_cast<float>(std::min(1 - alphaBar(t2) / alphaBar(t1), kMaxBeta));
  }
  return at::tensor(betas, at::kFloat);
}

}  // namespace

at::Tensor makeBetas(const SchedulerConfig& config) {
  const int64_t n = config.numTrainTimesteps;
  at::Tensor betas;
  if (config.trainedBetas.has_value()) {
    const std::vector<double>& trained = *config.trainedBetas;
    if (static_cast<int64_t>(trained.size()) != n) {
      throw InvalidArgument("Expected " + std::to_string(n) + " values (num_train_timesteps) for trained_betas but received " +
                            std::to_string(trained.size()));
    }
    betas = at::tensor(trained, at::kDouble).to(at::kFloat);
  } else {
    switch (config.betaSchedule) {
      case BetaSchedule::Linear: betas = at::linspace(config.betaStart, config.betaEnd, n, at::kFloat); break;
      case BetaSchedule::ScaledLinear:
        betas = at::pow(at::linspace(std::pow(config.betaStart, 0.5), std::pow(config.betaEnd, 0.5), n, at::kFloat), 2);
        break;
      case BetaSchedule::SquaredCosCapV2: betas = squaredcosCapV2(n); break;
      case BetaSchedule::Sigmoid:
        betas = at::sigmoid(at::linspace(-6, 6, n, at::kFloat)) * (config.betaEnd - config.betaStart) + config.betaStart;
        break;
    }
  }
  if (config.rescaleBetasZeroSnr) betas = rescaleZeroTerminalSnr(betas);
  return betas;
}

at::Tensor rescaleZeroTerminalSnr(const at::Tensor& betas) {
  at::Tensor alphasBarSqrt = at::cumprod(1.0 - betas, 0).sqrt();
  at::Tensor first = alphasBarSqrt[0].clone();
  at::Tensor last = alphasBarSqrt[-1].clone();
  // Shift so the last is zero, then scale so the first is unchanged.
  alphasBarSqrt = alphasBarSqrt - last;
  alphasBarSqrt = alphasBarSqrt * (first / (first - last));
  at::Tensor alphasBar = at::pow(alphasBarSqrt, 2);
  int64_t n = alphasBar.size(0);
  at::Tensor alphas = at::cat({alphasBar.slice(0, 0, 1), alphasBar.slice(0, 1, n) / alphasBar.slice(0, 0, n - 1)});
  return 1 - alphas;
}

at::Tensor makeAlphasCumprod(const at::Tensor& betas) { return at::cumprod(1.0 - betas, 0); }

}  // namespace difftune
