// The at::Tensor behind difftune::Tensor. Only files that do tensor math include this.
#pragma once

#include <ATen/core/Tensor.h>

#include "tensor/tensor.h"

namespace difftune {

struct TensorData {
  at::Tensor value;
};

inline const at::Tensor& unwrap(const Tensor& t) { return t.data()->value; }
inline Tensor wrap(at::Tensor value) { return Tensor(std::make_shared<TensorData>(TensorData{std::move(value)})); }

at::ScalarType toScalarType(DType dtype);
DType fromScalarType(at::ScalarType type);  // throws InvalidArgument for types difftune does not expose

}  // namespace difftune
