#include "train/adamw.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

namespace difftune {

void AdamW::step(double lr) {
  at::NoGradGuard noGrad;
  ++steps_;
  double bc1 = 1.0 - std::pow(hyper_.beta1, static_cast<double>(steps_));
  double bc2Sqrt = std::sqrt(1.0 - std::pow(hyper_.beta2, static_cast<double>(steps_)));
  for (auto& p : params_) {
    at::Tensor& param = *p.param;
    const at::Tensor& gradRaw = param.grad();
    if (!gradRaw.defined()) continue;
    // Moments in float32 even for bf16 parameters: the update is far below bf16's resolution.
    at::Tensor grad = gradRaw.to(at::kFloat);
    if (!p.expAvg.defined()) {
      p.expAvg = at::zeros_like(grad, at::MemoryFormat::Preserve);
      p.expAvgSq = at::zeros_like(grad, at::MemoryFormat::Preserve);
    }
    double groupLr = lr * p.lrMultiplier;
    at::Tensor master = param.scalar_type() == at::kFloat ? param : param.to(at::kFloat);
    if (p.weightDecay && hyper_.weightDecay != 0.0) master.mul_(1.0 - groupLr * hyper_.weightDecay);
    p.expAvg.lerp_(grad, 1.0 - hyper_.beta1);
    p.expAvgSq.mul_(hyper_.beta2).addcmul_(grad, grad, 1.0 - hyper_.beta2);
    at::Tensor denom = (p.expAvgSq.sqrt() / bc2Sqrt).add_(hyper_.eps);
    master.addcdiv_(p.expAvg, denom, -groupLr / bc1);
    if (master.data_ptr() != param.data_ptr()) param.copy_(master);
  }
}

double clipGradNorm(std::vector<at::Tensor>& grads, double maxNorm) {
  at::NoGradGuard noGrad;
  if (grads.empty()) return 0;
  std::vector<at::Tensor> norms;
  for (auto& g : grads) norms.push_back(g.to(at::kFloat).norm(2));
  double norm = at::stack(norms).norm(2).item<double>();
  if (std::isfinite(norm) && maxNorm > 0) {
    double coef = maxNorm / (norm + 1e-6);  // never scaled up
    if (coef < 1.0)
      for (auto& g : grads) g.mul_(coef);
  }
  return norm;
}

}  // namespace difftune
