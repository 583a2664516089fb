// Exponential moving average of the trainable weights (diffusers' EMAModel semantics).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace difftune {

struct EmaOptions {
  double decay = 0.9999;
  double minDecay = 0.0;
  int64_t updateAfterStep = 0;
  int64_t updateEvery = 1;  // optimizer steps between updates
  bool useWarmup = false;   // decay = 1 − (1 + step/invGamma)^−power
  double invGamma = 1.0;
  double power = 2.0 / 3.0;
  bool onCpu = false;  // keep the shadow weights in host memory (saves GPU memory)
};

class Ema {
 public:
  Ema(std::vector<std::pair<std::string, at::Tensor*>> params, EmaOptions options);
  // Called after optimizer step number `step` (1-based); updates every `updateEvery` steps.
  void update(int64_t step);
  double lastDecay() const { return lastDecay_; }
  std::vector<std::pair<std::string, at::Tensor>>& shadow() { return shadow_; }
  const EmaOptions& options() const { return options_; }
  int64_t updates() const { return updates_; }
  void setUpdates(int64_t n) { updates_ = n; }

 private:
  double decayAt(int64_t step) const;
  std::vector<std::pair<std::string, at::Tensor*>> params_;
  std::vector<std::pair<std::string, at::Tensor>> shadow_;
  EmaOptions options_;
  double lastDecay_ = 0;
  int64_t updates_ = 0;
};

}  // namespace difftune
