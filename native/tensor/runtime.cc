#include "tensor/runtime.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "tensor/failure.h"
#include "tensor/tensor.h"

namespace difftune {

RuntimeInfo runtimeInfo() {
  RuntimeInfo info;
  info.torchVersion = TORCH_VERSION;
  info.torchMajor = TORCH_VERSION_MAJOR;
  info.torchMinor = TORCH_VERSION_MINOR;
  info.cudaAvailable = at::hasCUDA() && at::detail::getCUDAHooks().getNumGPUs() > 0;
  info.cudaDeviceCount = at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0;
  info.threads = at::get_num_threads();
  info.parallelInfo = at::get_parallel_info();
  info.buildConfig = at::show_config();
  info.onednn = at::hasMKLDNN() && at::globalContext().userEnabledMkldnn();
  return info;
}

void setIntraOpThreads(int threads) {
  if (threads < 1) throw InvalidArgument("Expected a positive integer for threads but received " + std::to_string(threads));
  at::set_num_threads(threads);
}

int intraOpThreads() { return at::get_num_threads(); }

namespace {

// oneDNN's bf16 kernels need AVX-512 (avx512_core) or AMX: whether a cap leaves them out.
bool onednnCapExcludesBf16() {
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (cap == nullptr || *cap == '\0') cap = std::getenv("DNNL_MAX_CPU_ISA");
  if (cap == nullptr || *cap == '\0') return false;
  std::string isa(cap);
  for (char& c : isa) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto starts = [&](const char* prefix) { return isa.rfind(prefix, 0) == 0; };
  return !(isa == "ALL" || starts("AVX512_CORE") || starts("AVX10") || starts("AMX"));
}

}  // namespace

void noteCpuBf16Compute() {
  static const bool excluded = onednnCapExcludesBf16();
  if (excluded && at::globalContext().userEnabledMkldnn()) at::globalContext().setUserEnabledMkldnn(false);
}

void initComputeThread(int threads) {
  at::init_num_threads();
  if (threads > 0) at::set_num_threads(threads);
  at::GradMode::set_enabled(false);
}

GemmResult gemmBenchmark(int n, int reps, const std::string& device, const std::string& dtype) {
  if (n < 1 || n > 16384) throw InvalidArgument("Expected an integer in [1, 16384] for n but received " + std::to_string(n));
  if (reps < 1 || reps > 10000) throw InvalidArgument("Expected an integer in [1, 10000] for reps but received " + std::to_string(reps));
  std::string problem = checkDevice(device);
  if (!problem.empty()) throw InvalidArgument(problem);
  at::ScalarType type;
  if (dtype == "float32")
    type = at::kFloat;
  else if (dtype == "bfloat16")
    type = at::kBFloat16;
  else if (dtype == "float16")
    type = at::kHalf;
  else
    throw InvalidArgument("Expected \"float32\", \"bfloat16\" or \"float16\" for dtype but received \"" + dtype + "\"");

  if (type == at::kBFloat16 && !c10::Device(device).is_cuda()) noteCpuBf16Compute();
  auto options = at::TensorOptions().dtype(type).device(c10::Device(device));
  at::Tensor a = at::randn({n, n}, options);
  at::Tensor b = at::randn({n, n}, options);
  at::Tensor c = at::empty({n, n}, options);
  bool cuda = c10::Device(device).is_cuda();
  auto sync = [&] {
    if (cuda) (void)c.sum().item<float>();  // forces the queue to drain without CUDA headers
  };
  at::mm_out(c, a, b);  // warm-up: first-call allocation and kernel selection
  sync();
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    auto start = std::chrono::steady_clock::now();
    at::mm_out(c, a, b);
    sync();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  GemmResult result;
  result.seconds = times[times.size() / 2];
  result.gflops = 2.0 * n * static_cast<double>(n) * n / result.seconds / 1e9;
  return result;
}

}  // namespace difftune
