// A torch-free handle on a seedable random generator (an at::Generator on the CPU), so that sampling
// and training noise is reproducible and its state can be saved and restored to resume exactly.
// Noise for CUDA tensors is drawn on the CPU and copied, as diffusers' randn_tensor does with a CPU
// generator, so a seed gives the same numbers on every device.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace difftune {

// SplitMix64's finaliser: chains keys (seed, step, sample index, purpose, ...) into the seed of an
// independent generator, so each draw depends on its own keys only.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The seed of one sample's own random stream for one purpose: (seed, optimizer step, global sample
// index, stream) chained through splitmix64. A sample's draws then depend neither on the micro-batch
// or process that made them nor on whether another option drew numbers first. The trainers (train/)
// key all their per-sample noise with it, each purpose with its own stream number.
inline uint64_t sampleStreamKey(uint64_t seed, int64_t step, int64_t index, uint64_t stream) {
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<uint64_t>(step));
  h = splitmix64(h ^ static_cast<uint64_t>(index));
  return splitmix64(h ^ stream);
}

struct GeneratorData;  // holds the at::Generator; defined in generator_data.h

class Generator {
 public:
  Generator() = default;
  explicit Generator(std::shared_ptr<GeneratorData> data) : data_(std::move(data)) {}

  static Generator create(uint64_t seed);

  bool defined() const { return data_ != nullptr; }
  uint64_t initialSeed() const;
  void manualSeed(uint64_t seed);
  // The full state (a uint8 CPU tensor, a copy), and restoring it; a state from another kind of
  // generator or a corrupted one is an InvalidArgument.
  Tensor state() const;
  void setState(const Tensor& state);

  const std::shared_ptr<GeneratorData>& data() const { return data_; }

 private:
  std::shared_ptr<GeneratorData> data_;
};

}  // namespace difftune
