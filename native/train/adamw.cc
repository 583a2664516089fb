#include "train/adamw.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

namespace difftune {

namespace {

struct Coefficients {
  float decay;      // 1 − lr·weight_decay (1 without decay)
  float beta1Rest;  // 1 − β1
  float beta2;
  float beta2Rest;  // 1 − β2
  float bc2Sqrt;    // √(1 − β2^t)
  float eps;
  float stepSize;   // −lr / (1 − β1^t)
};

// One pass over the four float32 CPU tensors, with the same arithmetic in the same order as the
// tensor-op path below (decay, lerp with weight < ½, addcmul, sqrt ÷ bc2 + ε, addcdiv). Adam's update is
// memory-bound: the op path reads and writes the 4 × numel floats about 20 times (each op a pass, and
// the sqrt/div temporaries), this reads 4 and writes 3 (measured on ddpm-cifar10's 35.7 M parameters:
// ~150 ms → ~50 ms of a 1.8 s training step on 2 cores).
void fusedStep(float* p, const float* g, float* m, float* v, int64_t n, const Coefficients& c) {
  at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float pi = p[i] * c.decay;
      float mi = m[i] + c.beta1Rest * (g[i] - m[i]);
      float vi = v[i] * c.beta2 + c.beta2Rest * g[i] * g[i];
      float denom = std::sqrt(vi) / c.bc2Sqrt + c.eps;
      p[i] = pi + c.stepSize * (mi / denom);
      m[i] = mi;
      v[i] = vi;
    }
  });
}

bool fusable(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& m, const at::Tensor& v) {
  for (const at::Tensor* t : {&param, &grad, &m, &v}) {
    if (!t->device().is_cpu() || t->scalar_type() != at::kFloat || !t->is_contiguous()) return false;
  }
  return true;
}

}  // namespace

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
    bool decay = p.weightDecay && hyper_.weightDecay != 0.0;
    if (fusable(param, grad, p.expAvg, p.expAvgSq)) {
      Coefficients c{static_cast<float>(decay ? 1.0 - groupLr * hyper_.weightDecay : 1.0),
                     static_cast<float>(1.0 - hyper_.beta1), static_cast<float>(hyper_.beta2),
                     static_cast<float>(1.0 - hyper_.beta2), static_cast<float>(bc2Sqrt),
                     static_cast<float>(hyper_.eps), static_cast<float>(-groupLr / bc1)};
      fusedStep(param.data_ptr<float>(), grad.data_ptr<float>(), p.expAvg.data_ptr<float>(),
                p.expAvgSq.data_ptr<float>(), param.numel(), c);
      continue;
    }
    at::Tensor master = param.scalar_type() == at::kFloat ? param : param.to(at::kFloat);
    if (decay) master.mul_(1.0 - groupLr * hyper_.weightDecay);
    p.expAvg.lerp_(grad, 1.0 - hyper_.beta1);
    p.expAvgSq.mul_(hyper_.beta2).addcmul_(grad, grad, 1.0 - hyper_.beta2);
    at::Tensor denom = (p.expAvgSq.sqrt() / bc2Sqrt).add_(hyper_.eps);
    master.addcdiv_(p.expAvg, denom, -groupLr / bc1);
    if (master.data_ptr() != param.data_ptr()) param.copy_(master);
  }
}

}  // namespace difftune
