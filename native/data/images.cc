#include "data/images.h"

#include <ATen/ATen.h>

#include <string>

#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

Tensor imagesToFloat(const Tensor& images) {
  const at::Tensor& u8 = unwrap(images);
  if (u8.dim() != 4 || u8.scalar_type() != at::kByte)
    throw InvalidArgument("Expected a uint8 tensor [N, H, W, C] for images but received " + std::to_string(u8.dim()) + " dimensions of " +
                          std::string(c10::toString(u8.scalar_type())));
  // [N, H, W, C] → [N, C, H, W]; the float conversion writes the permuted copy once.
  at::Tensor out = at::empty({u8.size(0), u8.size(3), u8.size(1), u8.size(2)}, u8.options().dtype(at::kFloat));
  out.copy_(u8.permute({0, 3, 1, 2}));
  out.div_(127.5).sub_(1.0);
  return wrap(out);
}

}  // namespace difftune
