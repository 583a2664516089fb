#include "tensor/ops.h"

#include <ATen/ATen.h>

#include "tensor/failure.h"
#include "tensor/generator_data.h"
#include "tensor/shape_text.h"
#include "tensor/tensor_data.h"

namespace difftune {

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw InvalidArgument("Expected at least one tensor for tensors but received none");
  std::vector<at::Tensor> list;
  for (const auto& t : tensors) list.push_back(unwrap(t));
  return wrap(at::cat(list, dim));
}

Tensor randn(const std::vector<int64_t>& shape, const std::string& device, const Generator* generator) {
  std::string problem = checkDevice(device);
  if (!problem.empty()) throw InvalidArgument(problem);
  at::Tensor cpu = generator ? at::randn(shape, generator->data()->value, at::TensorOptions().dtype(at::kFloat))
                             : at::randn(shape, at::TensorOptions().dtype(at::kFloat));
  return wrap(device == "cpu" ? cpu : cpu.to(c10::Device(device)));
}

Tensor classifierFreeGuidance(const Tensor& output, double scale) {
  const at::Tensor& out = unwrap(output);
  if (out.dim() == 0 || out.size(0) % 2 != 0)
    throw InvalidArgument(
        "Expected an output whose batch holds the unconditional then the conditional half (an even batch) but received batch " +
        std::to_string(out.dim() == 0 ? 0 : out.size(0)));
  auto halves = out.chunk(2, 0);
  return wrap(halves[0] + scale * (halves[1] - halves[0]));
}

Tensor scale(const Tensor& output, double factor) { return wrap(unwrap(output) * factor); }

Tensor gaussianSample(const Tensor& mean, const Tensor& logvar, const Tensor& noise, double factor) {
  const at::Tensor &m = unwrap(mean), &lv = unwrap(logvar), &n = unwrap(noise);
  if (m.sizes() != lv.sizes() || m.sizes() != n.sizes())
    throw InvalidArgument("Expected mean, logvar and noise of one shape but received " + shapeText(m) + ", " + shapeText(lv) + " and " +
                          shapeText(n));
  for (const at::Tensor* t : {&m, &lv, &n})
    if (!at::isFloatingType(t->scalar_type()))
      throw InvalidArgument("Expected floating-point mean, logvar and noise but received " + std::string(c10::toString(t->scalar_type())));
  at::Tensor std = (0.5 * lv.clamp(-30.0, 20.0)).exp();
  return wrap((m + std * n.to(m.device(), m.scalar_type())) * factor);
}

}  // namespace difftune
