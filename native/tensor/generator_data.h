// The at::Generator behind difftune::Generator, and standard-normal noise drawn from it. Only files
// that do tensor math include this.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "tensor/generator.h"

namespace difftune {

struct GeneratorData {
  at::Generator value;
};

// N(0, 1) noise shaped and typed like `like`, on its device. With a generator the numbers are drawn
// on the CPU (then copied), so they do not depend on the device; without one, torch's default
// generator of that device is used.
at::Tensor randnLike(const at::Tensor& like, const Generator* generator);

}  // namespace difftune
