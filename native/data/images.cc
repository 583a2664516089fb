#include "data/images.h"

#include <string>

#include "tensor/failure.h"

namespace difftune {

Tensor imagesToFloat(const std::vector<uint8_t>& pixels, const std::vector<int64_t>& shape) {
  if (shape.size() != 4)
    throw InvalidArgument("Expected a shape [N, H, W, C] for images but received " + std::to_string(shape.size()) + " dimensions");
  const int64_t n = shape[0], h = shape[1], w = shape[2], c = shape[3];
  const size_t plane = static_cast<size_t>(h * w);
  if (static_cast<size_t>(n) * plane * static_cast<size_t>(c) != pixels.size())
    throw InvalidArgument("Expected " + std::to_string(static_cast<size_t>(n) * plane * static_cast<size_t>(c)) +
                          " bytes for images but received " + std::to_string(pixels.size()));
  std::vector<float> out(pixels.size());
  // The same float32 arithmetic as x.div_(127.5).sub_(1): bit-identical to torchvision-style normalisation.
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = pixels.data() + static_cast<size_t>(i) * plane * static_cast<size_t>(c);
    float* dst = out.data() + static_cast<size_t>(i) * plane * static_cast<size_t>(c);
    for (size_t p = 0; p < plane; ++p)
      for (int64_t ch = 0; ch < c; ++ch)
        dst[static_cast<size_t>(ch) * plane + p] =
            static_cast<float>(src[p * static_cast<size_t>(c) + static_cast<size_t>(ch)]) / 127.5f - 1.0f;
  }
  return Tensor::fromHost(out.data(), out.size() * sizeof(float), DType::Float32, {n, c, h, w});
}

}  // namespace difftune
