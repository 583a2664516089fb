// "[2, 4, 8, 8]": a shape as error messages print it.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace difftune {

inline std::string shapeText(at::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

inline std::string shapeText(const at::Tensor& t) { return shapeText(t.sizes()); }

}  // namespace difftune
