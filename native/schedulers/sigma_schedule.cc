#include "schedulers/sigma_schedule.h"

#include <algorithm>
#include <cmath>

#include "schedulers/numpy_compat.h"

namespace difftune {

std::vector<float> logOfFloat32(const std::vector<float>& values) {
  std::vector<float> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = std::log(values[i]);
  return out;
}

namespace {

// The bracketing table entries of log(max(sigma, 1e-10)) and the clipped weight of the upper one.
struct SigmaBracket {
  int64_t lowIdx;
  float w;
};

SigmaBracket bracketSigma(double sigma, const std::vector<float>& logSigmas) {
  const int64_t n = static_cast<int64_t>(logSigmas.size());
  const double logSigma = std::log(std::max(sigma, 1e-10));
  // numpy 1.x: float64 scalar − float32 array is computed in float32.
  const float logSigmaF = static_cast<float>(logSigma);
  // argmax of cumsum(dists >= 0): the first index where the running count reaches its maximum.
  int64_t count = 0, best = -1, lowIdx = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (logSigmaF - logSigmas[static_cast<size_t>(i)] >= 0) ++count;
    if (count > best) {
      best = count;
      lowIdx = i;
    }
  }
  lowIdx = std::min(lowIdx, n - 2);
  const float low = logSigmas[static_cast<size_t>(lowIdx)];
  const float high = logSigmas[static_cast<size_t>(lowIdx + 1)];
  float w = (low - logSigmaF) / (low - high);
  w = std::min(std::max(w, 0.0f), 1.0f);
  return {lowIdx, w};
}

}  // namespace

double sigmaToT(double sigma, const std::vector<float>& logSigmas) {
  const SigmaBracket b = bracketSigma(sigma, logSigmas);
  // float32 array × int64 array promotes to float64.
  return static_cast<double>(1 - b.w) * static_cast<double>(b.lowIdx) + static_cast<double>(b.w) * static_cast<double>(b.lowIdx + 1);
}

float sigmaToTFloat32(double sigma, const std::vector<float>& logSigmas) {
  const SigmaBracket b = bracketSigma(sigma, logSigmas);
  return (1 - b.w) * static_cast<float>(b.lowIdx) + b.w * static_cast<float>(b.lowIdx + 1);
}

std::vector<double> karrasSigmas(double sigmaMin, double sigmaMax, int64_t n) {
  constexpr double kRho = 7.0;
  std::vector<double> ramp = npLinspace(0, 1, n);
  const double minInvRho = std::pow(sigmaMin, 1 / kRho);
  const double maxInvRho = std::pow(sigmaMax, 1 / kRho);
  for (double& r : ramp) r = std::pow(maxInvRho + r * (minInvRho - maxInvRho), kRho);
  return ramp;
}

std::vector<double> luLambdas(double lambdaMin, double lambdaMax, int64_t n) {
  std::vector<double> ramp = npLinspace(0, 1, n);
  // rho = 1: ** 1.0 is the identity.
  for (double& r : ramp) r = lambdaMax + r * (lambdaMin - lambdaMax);
  return ramp;
}

}  // namespace difftune
