#include "tensor/generator.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#include "tensor/failure.h"
#include "tensor/generator_data.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

at::Generator& live(const std::shared_ptr<GeneratorData>& data) {
  if (data == nullptr) throw Disposed("Generator was used after dispose()");
  return data->value;
}

}  // namespace

Generator Generator::create(uint64_t seed) {
  return Generator(std::make_shared<GeneratorData>(GeneratorData{at::make_generator<at::CPUGeneratorImpl>(seed)}));
}

uint64_t Generator::initialSeed() const {
  at::Generator& gen = live(data_);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.current_seed();
}

void Generator::manualSeed(uint64_t seed) {
  at::Generator& gen = live(data_);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
}

Tensor Generator::state() const {
  at::Generator& gen = live(data_);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return wrap(gen.get_state().clone());
}

void Generator::setState(const Tensor& state) {
  at::Generator& gen = live(data_);
  const at::Tensor& s = unwrap(state);
  if (s.scalar_type() != at::kByte || s.dim() != 1 || !s.device().is_cpu()) {
    throw InvalidArgument("Expected a 1-D uint8 CPU tensor (from Generator.getState()) for state but received a " +
                          std::to_string(s.dim()) + "-D " + std::string(c10::toString(s.scalar_type())) + " tensor on " + s.device().str());
  }
  at::Generator probe = at::make_generator<at::CPUGeneratorImpl>();
  try {
    // Validate on a scratch generator first so a bad state never leaves this one half-written.
    probe.set_state(s.contiguous());
  } catch (const c10::Error& e) {
    throw InvalidArgument(std::string("Expected a CPU generator state for state but received one libtorch rejects: ") +
                          e.what_without_backtrace());
  }
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(s.contiguous());
}

at::Tensor randnLike(const at::Tensor& like, const Generator* generator) {
  if (generator == nullptr || !generator->defined()) return at::randn(like.sizes(), like.options());
  at::Generator gen = live(generator->data());
  at::Tensor noise = at::randn(like.sizes(), gen, like.options().device(at::kCPU));
  return like.device().is_cpu() ? noise : noise.to(like.device());
}

}  // namespace difftune
