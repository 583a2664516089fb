#include "nn/lora.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <stdexcept>

#include "tensor/generator.h"
#include "tensor/shape_text.h"

namespace difftune {

namespace {

thread_local std::shared_ptr<DropoutKeys> currentKeys;

// Inverted dropout (scale 1/(1−p)) with item i's mask drawn on the CPU from its own keyed generator,
// as the trainer's noise is: the same masks on every device and for any batch composition.
at::Tensor keyedDropout(const at::Tensor& x, double p, uint64_t layerKey, DropoutKeys& keys) {
  if (x.dim() < 1 || x.size(0) != static_cast<int64_t>(keys.sampleKeys.size()))
    throw std::logic_error("LoRA dropout: " + std::to_string(keys.sampleKeys.size()) + " sample keys for an input of shape " +
                           shapeText(x.sizes()));
  uint64_t call = keys.calls[layerKey]++;
  auto shape = x.sizes().slice(1);
  std::vector<at::Tensor> masks;
  masks.reserve(keys.sampleKeys.size());
  for (uint64_t sample : keys.sampleKeys) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(splitmix64(splitmix64(sample ^ layerKey) ^ call));
    masks.push_back(at::empty(shape, at::TensorOptions().dtype(at::kFloat)).bernoulli_(1 - p, gen));
  }
  // As at::dropout: noise = bernoulli(1−p) / (1−p) in the input's dtype, then x · noise.
  at::Tensor noise = at::stack(masks).to(x.device(), x.scalar_type()).div_(1 - p);
  return x * noise;
}

}  // namespace

DropoutKeysScope::DropoutKeysScope(std::shared_ptr<DropoutKeys> keys) : previous_(std::move(currentKeys)) { currentKeys = std::move(keys); }

DropoutKeysScope::~DropoutKeysScope() { currentKeys = std::move(previous_); }

const std::shared_ptr<DropoutKeys>& DropoutKeysScope::current() { return currentKeys; }

uint64_t loraLayerKey(const std::string& module) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a
  for (unsigned char c : module) h = (h ^ c) * 0x100000001B3ULL;
  return splitmix64(h);
}

at::Tensor LoraAdapter::delta(const at::Tensor& x, bool training) const {
  at::Tensor in = x;
  if (training && dropout > 0) {
    const auto& keys = DropoutKeysScope::current();
    in = keys ? keyedDropout(x, dropout, key, *keys) : at::dropout(x, dropout, true);
  }
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
