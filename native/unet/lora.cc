#include "unet/lora.h"

#include <ATen/ATen.h>

namespace difftune {

at::Tensor LoraAdapter::delta(const at::Tensor& x, bool training) const {
  at::Tensor in = training && dropout > 0 ? at::dropout(x, dropout, true) : x;
  // Under autocast the adapter computes like its base layer; otherwise in the adapter's dtype.
  if (conv) {
    at::Tensor h = at::conv2d(in, A, {}, {stride, stride}, {padding, padding});
    return at::conv2d(h, B) * scale();
  }
  return at::linear(at::linear(in, A), B) * scale();
}

at::Tensor LoraAdapter::mergedWeight() const {
  at::Tensor a = A.reshape({A.size(0), -1});         // [r, in·k·k]
  at::Tensor b = B.reshape({B.size(0), B.size(1)});  // [out, r]
  at::Tensor w = at::matmul(b, a) * scale();         // [out, in·k·k]
  return conv ? w.view({B.size(0), A.size(1), kernel, kernel}) : w;
}

}  // namespace difftune
