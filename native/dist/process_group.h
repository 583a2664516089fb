// A data-parallel process group over torch.distributed's c10d (Gloo on the CPU, NCCL for CUDA tensors
// where libtorch has it), set up from torchrun's variables (rank, world size, master address and
// port). Only native/dist/*.cc include c10d; this header is torch-free for the N-API glue.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/gradient_reducer.h"

namespace difftune {

struct ProcessGroupOptions {
  int rank = 0;
  int worldSize = 1;
  std::string masterAddr = "127.0.0.1";
  int masterPort = 29500;
  int64_t timeoutMs = 600000;      // a collective or the rendezvous waiting longer than this fails
  std::string backend = "auto";    // "auto" (NCCL for CUDA where available, else Gloo) | "gloo" | "nccl"
  std::string device = "cpu";      // where the trained tensors live: picks the backend under "auto"
  int64_t bucketBytes = 25 << 20;  // gradients travel in flat buckets of at most this size
};

struct ProcessGroupCounters {
  int64_t gradientElements = 0;    // gradient elements handed to all-reduce, over all steps
  int64_t gradientAllreduces = 0;  // bucket all-reduces of gradients
  int64_t broadcastElements = 0;
  int64_t scalarAllreduces = 0;
};

// Which collectives this build of the addon can run (decided at compile time).
struct DistCapabilities {
  bool gloo = false;
  bool nccl = false;
};
DistCapabilities distCapabilities();

class ProcessGroup : public GradientReducer {
 public:
  explicit ProcessGroup(const ProcessGroupOptions& options);
  ~ProcessGroup() override;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  // The rendezvous: rank 0 serves the store at masterAddr:masterPort, every rank connects; returns
  // once all worldSize ranks joined (or throws after timeoutMs naming who is missing).
  void connect();
  bool reduceGradients(std::vector<at::Tensor>& grads, bool localBad) override;
  void broadcastFromRoot(std::vector<at::Tensor>& tensors) override;
  // Element-wise sum over the ranks of a few numbers (metrics, flags).
  std::vector<double> allreduceSum(const std::vector<double>& values);
  void barrier();
  // Leaves the group (idempotent); later collectives throw.
  void shutdown();

  const ProcessGroupOptions& options() const;
  std::string backendName() const;
  ProcessGroupCounters counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace difftune
