#include "dist/process_group.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <stdexcept>

#include "tensor/failure.h"

// Gloo: Debian's libtorch is built with it and its headers come with libgloo-dev; a libtorch without
// gloo headers beside it builds the addon without distributed training (a clear error at run time).
#if !defined(DIFFTUNE_NO_GLOO) && __has_include(<gloo/config.h>)
#define DIFFTUNE_HAVE_GLOO 1
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
// NCCL: only where the build asks for it (CMakeLists.txt defines DIFFTUNE_WITH_NCCL for a CUDA
// libtorch) and nccl.h is there.
#if defined(DIFFTUNE_WITH_NCCL) && __has_include(<nccl.h>) && __has_include(<cuda_runtime_api.h>)
#define DIFFTUNE_HAVE_NCCL 1
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#if defined(DIFFTUNE_HAVE_GLOO) || defined(DIFFTUNE_HAVE_NCCL)
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#endif

namespace difftune {

DistCapabilities distCapabilities() {
  DistCapabilities c;
#ifdef DIFFTUNE_HAVE_GLOO
  c.gloo = true;
#endif
#ifdef DIFFTUNE_HAVE_NCCL
  c.nccl = true;
#endif
  return c;
}

#if defined(DIFFTUNE_HAVE_GLOO) || defined(DIFFTUNE_HAVE_NCCL)

namespace {

std::string firstLine(const std::string& s) {
  auto end = s.find('\n');
  return end == std::string::npos ? s : s.substr(0, end);
}

// "30 s", "2.5 s".
std::string seconds(int64_t ms) {
  std::string s = std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    std::string frac = std::to_string(1000 + ms % 1000).substr(1);
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
    s += "." + frac;
  }
  return s + " s";
}

// The message of any exception c10d or the transport throws, without C++ backtraces.
std::string describeCurrent() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return firstLine(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return firstLine(e.what());
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

// 1.13: the backends derive from c10d::ProcessGroup; 2.x: from c10d::Backend. Both have the same
// collective signatures, so the group holds the backend itself and never the 2.x dispatching wrapper.
#ifdef DIFFTUNE_HAVE_GLOO
using GlooGroup = c10d::ProcessGroupGloo;
#endif
#ifdef DIFFTUNE_HAVE_NCCL
using NcclGroup = c10d::ProcessGroupNCCL;
#endif

struct ProcessGroup::Impl {
  ProcessGroupOptions options;
  std::string backend;  // "gloo" | "nccl" once connected
  c10::intrusive_ptr<c10d::Store> store;
#ifdef DIFFTUNE_HAVE_GLOO
  c10::intrusive_ptr<GlooGroup> gloo;
#endif
#ifdef DIFFTUNE_HAVE_NCCL
  c10::intrusive_ptr<NcclGroup> nccl;
#endif
  bool connected = false;
  bool closed = false;
  std::string broken;  // the first failure: the group is unusable after it
  ProcessGroupCounters counters;

  std::string where() const {
    return "rank " + std::to_string(options.rank) + " of " + std::to_string(options.worldSize) + " (" +
           (backend.empty() ? std::string("c10d") : backend) + ", timeout " + seconds(options.timeoutMs) + ")";
  }

  void ready(const char* what) {
    if (closed) throw std::runtime_error(std::string("distributed ") + what + ": the process group was shut down");
    if (!broken.empty()) throw std::runtime_error(std::string("distributed ") + what + ": the process group failed earlier: " + broken);
    if (!connected) throw std::runtime_error(std::string("distributed ") + what + ": connect() first");
  }

  // Runs a collective; any failure (a peer gone, a timeout) becomes one clear, final error.
  template <typename Fn>
  void guarded(const std::string& what, Fn&& fn) {
    ready(what.c_str());
    try {
      fn();
    } catch (...) {
      broken = what + " failed on " + where() + ": " + describeCurrent() +
               ". Another rank exited, was killed or stopped answering; its own log says why";
      throw std::runtime_error("distributed training stopped: " + broken);
    }
  }

  template <typename Launch>
  c10::intrusive_ptr<c10d::Work> launch(Launch&& fn) {
#ifdef DIFFTUNE_HAVE_NCCL
    if (nccl) return fn(*nccl);
#endif
#ifdef DIFFTUNE_HAVE_GLOO
    if (gloo) return fn(*gloo);
#endif
    throw std::runtime_error("no backend");
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work) { work->wait(std::chrono::milliseconds(options.timeoutMs)); }

  void allreduceSum(std::vector<at::Tensor>& tensors, std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{t};
      c10d::AllreduceOptions opts;
      opts.reduceOp = c10d::ReduceOp::SUM;
      works.push_back(launch([&](auto& pg) { return pg.allreduce(one, opts); }));
    }
  }
};

namespace {

// Consecutive tensors of one dtype and device, at most `bytes` each (a larger tensor travels alone).
std::vector<std::pair<size_t, size_t>> planBuckets(const std::vector<at::Tensor>& tensors, int64_t bytes) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t start = 0;
  int64_t size = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    int64_t b = t.numel() * static_cast<int64_t>(t.element_size());
    bool split =
        i > start && (size + b > bytes || t.scalar_type() != tensors[start].scalar_type() || t.device() != tensors[start].device());
    if (split) {
      out.emplace_back(start, i);
      start = i;
      size = 0;
    }
    size += b;
  }
  if (start < tensors.size()) out.emplace_back(start, tensors.size());
  return out;
}

at::Tensor flatten(const std::vector<at::Tensor>& tensors, size_t begin, size_t end) {
  std::vector<at::Tensor> flat;
  for (size_t i = begin; i < end; ++i) flat.push_back(tensors[i].reshape({-1}));
  return flat.size() == 1 ? flat[0].clone() : at::cat(flat);
}

void unflatten(const at::Tensor& flat, std::vector<at::Tensor>& tensors, size_t begin, size_t end) {
  int64_t offset = 0;
  for (size_t i = begin; i < end; ++i) {
    int64_t n = tensors[i].numel();
    tensors[i].copy_(flat.narrow(0, offset, n).view(tensors[i].sizes()));
    offset += n;
  }
}

}  // namespace

ProcessGroup::ProcessGroup(const ProcessGroupOptions& options) : impl_(std::make_unique<Impl>()) {
  const auto& o = options;
  if (o.worldSize < 1) throw InvalidArgument("Expected a world size ≥ 1 but received " + std::to_string(o.worldSize));
  if (o.rank < 0 || o.rank >= o.worldSize)
    throw InvalidArgument("Expected a rank in [0, " + std::to_string(o.worldSize) + ") but received " + std::to_string(o.rank));
  if (o.masterPort < 1 || o.masterPort > 65535)
    throw InvalidArgument("Expected a master port in [1, 65535] but received " + std::to_string(o.masterPort));
  if (o.timeoutMs <= 0) throw InvalidArgument("Expected a positive timeout but received " + std::to_string(o.timeoutMs) + " ms");
  if (o.bucketBytes <= 0) throw InvalidArgument("Expected a positive bucket size but received " + std::to_string(o.bucketBytes));
  if (o.backend != "auto" && o.backend != "gloo" && o.backend != "nccl")
    throw InvalidArgument("Expected \"auto\", \"gloo\" or \"nccl\" for the backend but received \"" + o.backend + "\"");
  impl_->options = o;
}

ProcessGroup::~ProcessGroup() {
  try {
    shutdown();
  } catch (...) {
  }
}

void ProcessGroup::connect() {
  Impl& m = *impl_;
  if (m.connected) return;
  const auto& o = m.options;
  bool cuda = o.device.rfind("cuda", 0) == 0;
  std::string backend = o.backend == "auto" ? (cuda && distCapabilities().nccl ? "nccl" : "gloo") : o.backend;
  if (backend == "nccl" && !distCapabilities().nccl)
    throw std::runtime_error(
        "distributed: the NCCL backend is not in this build (it needs a CUDA libtorch with NCCL headers); use \"gloo\"");
  if (backend == "gloo" && !distCapabilities().gloo)
    throw std::runtime_error(
        "distributed: this build of the addon has no Gloo (its headers were missing at build time). On Debian: apt-get install "
        "libgloo-dev, then npm run build");
  m.backend = backend;
  auto timeout = std::chrono::milliseconds(o.timeoutMs);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.masterPort);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<std::size_t>(o.worldSize);
    so.waitWorkers = true;
    so.timeout = timeout;
    m.store = c10::make_intrusive<c10d::TCPStore>(o.masterAddr, so);
#ifdef DIFFTUNE_HAVE_NCCL
    if (backend == "nccl") {
      auto opts = NcclGroup::Options::create();
      opts->timeout = timeout;
      m.nccl = c10::make_intrusive<NcclGroup>(m.store, o.rank, o.worldSize, opts);
    }
#endif
#ifdef DIFFTUNE_HAVE_GLOO
    if (backend == "gloo") {
      auto opts = GlooGroup::Options::create(timeout);
      // Bind where the master is reachable: loopback for a one-machine run, else this host's address.
      bool loopback = o.masterAddr == "127.0.0.1" || o.masterAddr == "localhost" || o.masterAddr == "::1";
      opts->devices.push_back(loopback ? GlooGroup::createDeviceForHostname(o.masterAddr) : GlooGroup::createDefaultDevice());
      opts->threads = 2;
      m.gloo = c10::make_intrusive<GlooGroup>(m.store, o.rank, o.worldSize, opts);
    }
#endif
  } catch (...) {
    m.broken = "rendezvous at " + o.masterAddr + ":" + std::to_string(o.masterPort) + " failed on " + m.where() + ": " + describeCurrent();
    throw std::runtime_error("distributed: " + m.broken + ". Check that all " + std::to_string(o.worldSize) +
                             " ranks started with the same MASTER_ADDR/MASTER_PORT and WORLD_SIZE, and that the port is reachable");
  }
  m.connected = true;
}

bool ProcessGroup::reduceGradients(std::vector<at::Tensor>& grads, bool localBad) {
  Impl& m = *impl_;
  bool anyBad = localBad;
  m.guarded("gradient all-reduce", [&] {
    at::NoGradGuard noGrad;
    at::Device device = grads.empty() ? at::Device(at::kCPU) : grads[0].device();
    std::vector<at::Tensor> flats{at::full({1}, localBad ? 1.0f : 0.0f, at::TensorOptions().dtype(at::kFloat).device(device))};
    auto buckets = planBuckets(grads, m.options.bucketBytes);
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    m.allreduceSum(flats, works);  // the flag first; each bucket goes out as soon as it is flat
    for (const auto& [b, e] : buckets) {
      std::vector<at::Tensor> one{flatten(grads, b, e)};
      m.allreduceSum(one, works);
      flats.push_back(one[0]);
      m.counters.gradientElements += one[0].numel();
      m.counters.gradientAllreduces++;
    }
    for (auto& w : works) m.wait(w);
    anyBad = flats[0].item<float>() > 0;
    double inv = 1.0 / m.options.worldSize;
    for (size_t i = 0; i < buckets.size(); ++i) {
      flats[i + 1].mul_(inv);
      unflatten(flats[i + 1], grads, buckets[i].first, buckets[i].second);
    }
  });
  return anyBad;
}

void ProcessGroup::broadcastFromRoot(std::vector<at::Tensor>& tensors) {
  Impl& m = *impl_;
  m.guarded("broadcast of the initial weights from rank 0", [&] {
    at::NoGradGuard noGrad;
    auto buckets = planBuckets(tensors, m.options.bucketBytes);
    std::vector<at::Tensor> flats;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (const auto& [b, e] : buckets) {
      std::vector<at::Tensor> one{flatten(tensors, b, e)};
      c10d::BroadcastOptions opts;
      opts.rootRank = 0;
      works.push_back(m.launch([&](auto& pg) { return pg.broadcast(one, opts); }));
      flats.push_back(one[0]);
      m.counters.broadcastElements += one[0].numel();
    }
    for (auto& w : works) m.wait(w);
    if (m.options.rank != 0)
      for (size_t i = 0; i < buckets.size(); ++i) unflatten(flats[i], tensors, buckets[i].first, buckets[i].second);
  });
}

std::vector<double> ProcessGroup::allreduceSum(const std::vector<double>& values) {
  Impl& m = *impl_;
  std::vector<double> out(values);
  if (values.empty()) return out;
  m.guarded("all-reduce of metrics", [&] {
    bool cuda = m.backend == "nccl";
    at::Tensor t = at::tensor(values, at::TensorOptions().dtype(at::kDouble));
    if (cuda) t = t.to(at::Device(m.options.device));
    std::vector<at::Tensor> one{t};
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    m.allreduceSum(one, works);
    for (auto& w : works) m.wait(w);
    at::Tensor host = one[0].cpu().contiguous();
    for (size_t i = 0; i < out.size(); ++i) out[i] = host.data_ptr<double>()[i];
    m.counters.scalarAllreduces++;
  });
  return out;
}

void ProcessGroup::barrier() {
  Impl& m = *impl_;
  m.guarded("barrier", [&] {
    c10d::BarrierOptions opts;
    opts.timeout = std::chrono::milliseconds(m.options.timeoutMs);
    m.wait(m.launch([&](auto& pg) { return pg.barrier(opts); }));
  });
}

void ProcessGroup::shutdown() {
  Impl& m = *impl_;
  if (m.closed) return;
  m.closed = true;
  // Dropping the backend joins its worker threads; the store (rank 0 serves it) goes last.
#ifdef DIFFTUNE_HAVE_NCCL
  m.nccl.reset();
#endif
#ifdef DIFFTUNE_HAVE_GLOO
  m.gloo.reset();
#endif
  m.store.reset();
}

std::string ProcessGroup::backendName() const { return impl_->backend; }

#else  // neither Gloo nor NCCL: the same class, refusing to connect

struct ProcessGroup::Impl {
  ProcessGroupOptions options;
  ProcessGroupCounters counters;
};

ProcessGroup::ProcessGroup(const ProcessGroupOptions& options) : impl_(std::make_unique<Impl>()) { impl_->options = options; }
ProcessGroup::~ProcessGroup() = default;
void ProcessGroup::connect() {
  throw std::runtime_error(
      "distributed: this build of the addon has no Gloo (its headers were missing at build time). On Debian: apt-get install libgloo-dev, "
      "then npm run build");
}
bool ProcessGroup::reduceGradients(std::vector<at::Tensor>&, bool) {
  connect();
  return false;
}
void ProcessGroup::broadcastFromRoot(std::vector<at::Tensor>&) { connect(); }
std::vector<double> ProcessGroup::allreduceSum(const std::vector<double>&) {
  connect();
  return {};
}
void ProcessGroup::barrier() { connect(); }
void ProcessGroup::shutdown() {}
std::string ProcessGroup::backendName() const { return ""; }

#endif

const ProcessGroupOptions& ProcessGroup::options() const { return impl_->options; }
ProcessGroupCounters ProcessGroup::counters() const { return impl_->counters; }

}  // namespace difftune
