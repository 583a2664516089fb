#include "nn/layers.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "tensor/failure.h"

namespace difftune {

namespace {

// kaiming_uniform_(a=sqrt(5)) on the weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias:
// torch.nn.Linear/Conv2d.reset_parameters.
void torchDefaultInit(at::Tensor& weight, at::Tensor* bias, int64_t fanIn, at::Generator& gen) {
  at::NoGradGuard noGrad;
  double bound = fanIn > 0 ? 1.0 / std::sqrt(static_cast<double>(fanIn)) : 0.0;
  // gain(leaky_relu, a=sqrt(5)) = sqrt(2 / (1 + 5)); bound = gain * sqrt(3 / fan_in) = 1/sqrt(fan_in).
  weight.uniform_(-bound, bound, gen);
  if (bias != nullptr) bias->uniform_(-bound, bound, gen);
}

at::Tensor param(std::vector<int64_t> shape) { return at::zeros(shape).set_requires_grad(true); }

}  // namespace

void resetParameters(Module& model, at::Generator& gen) {
  model.forEachModule([&gen](Module& m) {
    if (auto* layer = dynamic_cast<Layer*>(&m)) layer->reset(gen);
  });
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool withBias)
    : in(in),
      out(out),
      kernel(kernel),
      stride(stride),
      padding(padding),
      weight(registerParameter("weight", param({out, in, kernel, kernel}))) {
  if (withBias) bias = &registerParameter("bias", param({out}));
}

at::Tensor Conv2d::forward(const at::Tensor& x) const {
  at::Tensor y = at::conv2d(x, weight, bias ? *bias : at::Tensor(), {stride, stride}, {padding, padding});
  return lora ? y + lora->delta(x, training()) : y;
}

void Conv2d::reset(at::Generator& gen) { torchDefaultInit(weight, bias, in * kernel * kernel, gen); }

Linear::Linear(int64_t in, int64_t out, bool withBias) : in(in), out(out), weight(registerParameter("weight", param({out, in}))) {
  if (withBias) bias = &registerParameter("bias", param({out}));
}

at::Tensor Linear::forward(const at::Tensor& x) const {
  at::Tensor y = at::linear(x, weight, bias ? *bias : at::Tensor());
  return lora ? y + lora->delta(x, training()) : y;
}

void Linear::reset(at::Generator& gen) { torchDefaultInit(weight, bias, in, gen); }

GroupNorm::GroupNorm(int64_t groups, int64_t channels, double eps, bool affine) : groups(groups), channels(channels), eps(eps) {
  if (groups <= 0 || channels % groups != 0)
    throw InvalidArgument("GroupNorm: " + std::to_string(channels) + " channels cannot be split into " + std::to_string(groups) +
                          " groups (norm_num_groups must divide every block's channels)");
  if (affine) {
    weight = &registerParameter("weight", at::ones({channels}).set_requires_grad(true));
    bias = &registerParameter("bias", param({channels}));
  }
}

namespace {
// Under autocast a norm may receive bf16/fp16 activations while its affine parameters stay float32:
// normalise in the parameters' precision (the statistics need it) and let the next op cast down.
at::Tensor matchParameter(const at::Tensor& x, const at::Tensor* weight) {
  return weight && x.scalar_type() != weight->scalar_type() ? x.to(weight->scalar_type()) : x;
}
}  // namespace

at::Tensor GroupNorm::forward(const at::Tensor& xIn) const {
  at::Tensor x = matchParameter(xIn, weight);
  return at::group_norm(x, groups, weight ? *weight : at::Tensor(), bias ? *bias : at::Tensor(), eps);
}

void GroupNorm::reset(at::Generator&) {
  at::NoGradGuard noGrad;
  if (weight) weight->fill_(1.0);
  if (bias) bias->zero_();
}

LayerNorm::LayerNorm(int64_t dim, double eps, bool affine) : dim(dim), eps(eps) {
  if (affine) {
    weight = &registerParameter("weight", at::ones({dim}).set_requires_grad(true));
    bias = &registerParameter("bias", param({dim}));
  }
}

at::Tensor LayerNorm::forward(const at::Tensor& xIn) const {
  at::Tensor x = matchParameter(xIn, weight);
  return at::layer_norm(x, {dim}, weight ? *weight : at::Tensor(), bias ? *bias : at::Tensor(), eps);
}

void LayerNorm::reset(at::Generator&) {
  at::NoGradGuard noGrad;
  if (weight) weight->fill_(1.0);
  if (bias) bias->zero_();
}

Embedding::Embedding(int64_t num, int64_t dim) : num(num), dim(dim), weight(registerParameter("weight", param({num, dim}))) {}

at::Tensor Embedding::forward(const at::Tensor& indices) const {
  if (indices.numel() > 0) {
    int64_t lo = indices.min().item<int64_t>(), hi = indices.max().item<int64_t>();
    if (lo < 0 || hi >= num)
      throw InvalidArgument("Expected class labels in [0, " + std::to_string(num - 1) + "] but received a label " +
                            std::to_string(lo < 0 ? lo : hi));
  }
  return at::embedding(weight, indices);
}

void Embedding::reset(at::Generator& gen) {
  at::NoGradGuard noGrad;
  weight.normal_(0.0, 1.0, gen);
}

Activation parseActivation(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return Activation::SiLU;
  if (name == "mish") return Activation::Mish;
  if (name == "gelu") return Activation::GELU;
  if (name == "relu") return Activation::ReLU;
  throw InvalidArgument("Expected one of \"silu\", \"swish\", \"mish\", \"gelu\", \"relu\" for " + where + " but received \"" + name +
                        "\"");
}

at::Tensor activate(Activation act, const at::Tensor& x) {
  switch (act) {
    case Activation::SiLU: return at::silu(x);
    case Activation::Mish: return at::mish(x);
    case Activation::GELU: return at::gelu(x);
    case Activation::ReLU: return at::relu(x);
  }
  return x;
}

at::Tensor trainDropout(const at::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  return at::dropout(x, p, true);
}

}  // namespace difftune
