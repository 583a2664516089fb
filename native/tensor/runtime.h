// Process-level facts and settings of libtorch: version, backends, threads, a GEMM probe.
#pragma once

#include <string>

namespace difftune {

struct RuntimeInfo {
  std::string torchVersion;
  int torchMajor = 0;
  int torchMinor = 0;
  bool cudaAvailable = false;
  int cudaDeviceCount = 0;
  int threads = 0;  // intra-op threads of the calling thread
  std::string parallelInfo;
  std::string buildConfig;
  bool onednn = false;  // whether libtorch may route ops to oneDNN (built with it, and not switched off)
};

RuntimeInfo runtimeInfo();

// Sets torch's intra-op thread count for the calling OS thread (OpenMP keeps it per thread),
// so it must run on the compute thread.
void setIntraOpThreads(int threads);
int intraOpThreads();

// Called once on the compute thread before any job: intra-op threads, and grad mode off by default
// (jobs that train enable it for their own scope).
void initComputeThread(int threads);

// Called before bf16 computation on the CPU (bf16 autocast, bf16 weights). libtorch 1.13 routes bf16
// convolutions and matmuls to oneDNN by the CPU's own flags, ignoring a cap set with ONEDNN_MAX_CPU_ISA
// (or DNNL_MAX_CPU_ISA); under a cap below avx512_core oneDNN then fails with "could not create a
// primitive descriptor iterator". Such a cap is how an AVX-512 machine is run as an AVX2 one (CI does),
// so from the first bf16 computation on, oneDNN is switched off for the process, as libtorch does for
// bf16 on CPUs without AVX-512. float32 work before that keeps oneDNN's (capped) kernels.
void noteCpuBf16Compute();

struct GemmResult {
  double seconds = 0;  // median of the timed repetitions
  double gflops = 0;
};

// Times an n×n×n matrix multiply on `device` in `dtype` ("float32" or "bfloat16"): the GEMM peak the
// benchmarks compare achieved FLOP/s against.
GemmResult gemmBenchmark(int n, int reps, const std::string& device, const std::string& dtype);

}  // namespace difftune
