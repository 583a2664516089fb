// AdamW with parameter groups, exactly torch.optim.AdamW's update (decoupled weight decay, bias
// correction), on ATen tensors. State lives per parameter so frozen parameters cost nothing.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace difftune {

struct AdamWHyper {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 1e-2;
};

struct AdamWParam {
  std::string name;
  at::Tensor* param;  // the model's parameter slot
  double lrMultiplier = 1.0;
  bool weightDecay = true;
  at::Tensor expAvg, expAvgSq;  // fp32, created on the first step
};

class AdamW {
 public:
  AdamW(std::vector<AdamWParam> params, AdamWHyper hyper) : params_(std::move(params)), hyper_(hyper) {}
  // One update with base learning rate `lr` from the parameters' current .grad (missing grad: skipped).
  void step(double lr);
  int64_t steps() const { return steps_; }
  void setSteps(int64_t s) { steps_ = s; }
  std::vector<AdamWParam>& params() { return params_; }

 private:
  std::vector<AdamWParam> params_;
  AdamWHyper hyper_;
  int64_t steps_ = 0;
};

// torch.nn.utils.clip_grad_norm_ over `grads` (float32 norms whatever their dtype): returns their total
// 2-norm before clipping and, when it is finite and above maxNorm > 0, scales every gradient in place by
// maxNorm / (norm + 1e-6). maxNorm <= 0: the norm only.
double clipGradNorm(std::vector<at::Tensor>& grads, double maxNorm);

}  // namespace difftune
