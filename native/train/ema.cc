#include "train/ema.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

namespace difftune {

Ema::Ema(std::vector<std::pair<std::string, at::Tensor*>> params, EmaOptions options) : params_(std::move(params)), options_(options) {
  at::NoGradGuard noGrad;
  for (auto& [name, p] : params_) {
    at::Tensor copy = p->detach().to(at::kFloat).clone();
    shadow_.emplace_back(name, options_.onCpu ? copy.to(at::kCPU) : copy);
  }
}

double Ema::decayAt(int64_t optimizationStep) const {
  // diffusers: step = optimization_step − update_after_step − 1, then the warmup or (1+step)/(10+step).
  double step = std::max<double>(0.0, static_cast<double>(optimizationStep - options_.updateAfterStep - 1));
  if (step <= 0) return 0.0;
  double value = options_.useWarmup ? 1.0 - std::pow(1.0 + step / options_.invGamma, -options_.power) : (1.0 + step) / (10.0 + step);
  return std::max(options_.minDecay, std::min(value, options_.decay));
}

void Ema::update(int64_t step) {
  if (options_.updateEvery > 1 && step % options_.updateEvery != 0) return;
  at::NoGradGuard noGrad;
  // diffusers counts EMA updates (its optimization_step), not optimizer steps.
  ++updates_;
  double decay = decayAt(updates_);
  lastDecay_ = decay;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& s = shadow_[i].second;
    at::Tensor p = params_[i].second->detach().to(s.device(), at::kFloat);
    s.sub_((s - p) * (1.0 - decay));
  }
}

}  // namespace difftune
