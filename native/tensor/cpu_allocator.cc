// Why a cache: a training step allocates and frees the same large activations and gradients every step.
// Handed to glibc, a block above malloc's mmap threshold is mapped fresh each time, and the kernel faults
// in and zeroes every page of it: on a 2-core machine the ddpm-cifar10 step spent a third of its time in
// the kernel (3.0 s per step against 2.2 s with glibc's dynamic threshold, which in turn keeps freed
// blocks in arenas that grow gigabytes past the live tensors of an SD 1.5 step). Freed blocks of 256 KiB
// and more are kept here, by size class, and handed out again. What is kept is bounded by the largest
// live set seen plus a slack (1/16 of it, at least 128 MiB): the oldest kept blocks go back to the OS
// first when a new block would pass it, so the resident size tracks the live tensors, not the history.
// Smaller requests go to libtorch's default allocator, which glibc serves from its heap.
#include "tensor/cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <algorithm>
#include <map>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif

// libtorch 2.3 made Allocator::allocate non-const and copy_data a pure virtual.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define DIFFTUNE_ALLOCATE_CONST
#define DIFFTUNE_ALLOCATOR_COPY_DATA 1
#else
#define DIFFTUNE_ALLOCATE_CONST const
#define DIFFTUNE_ALLOCATOR_COPY_DATA 0
#endif

namespace difftune {

namespace {

constexpr int64_t kMinBlockBytes = 256 << 10;
constexpr int64_t kPage = 4096;

// Up to 1/8 wasted per block: sizes round up to an eighth of their power of two (pages at least), so
// tensors whose sizes differ a little (a last smaller batch, bucketed resolutions) share a class.
size_t sizeClass(size_t n) {
  size_t pages = (n + kPage - 1) / kPage * kPage;
  size_t top = size_t{1} << (63 - __builtin_clzll(pages));
  size_t step = std::max<size_t>(kPage, top / 8);
  return (pages + step - 1) / step * step;
}

int64_t envBytes(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long long mb = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || mb < 0) return fallback;
  return static_cast<int64_t>(mb) << 20;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(c10::Allocator* fallback) : fallback_(fallback) {
    slackFixed_ = envBytes("DIFFTUNE_CPU_CACHE_SLACK_MB", -1);
  }

  c10::DataPtr allocate(size_t n) DIFFTUNE_ALLOCATE_CONST override {
    if (static_cast<int64_t>(n) < kMinBlockBytes) return fallback_->allocate(n);
    void* block = const_cast<CachingCpuAllocator*>(this)->take(sizeClass(n), n);
    return {block, block, &CachingCpuAllocator::release, c10::Device(c10::DeviceType::CPU)};
  }

  // raw_allocate/raw_deallocate (used by libtorch's own GEMM workspaces) need the deleter by itself; the
  // fallback's small blocks carry the fallback's deleter, so route them back through it.
  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::rawRelease; }

#if DIFFTUNE_ALLOCATOR_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif

  CpuAllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    CpuAllocatorStats s;
    s.source = "difftune";
    s.minBlockBytes = kMinBlockBytes;
    s.slackBytes = slack();
    s.cachedBytes = cached_;
    s.liveBytes = live_;
    s.peakLiveBytes = peakLive_;
    s.peakBytes = peak_;
    s.hits = hits_;
    s.misses = misses_;
    s.evictions = evictions_;
    return s;
  }

  void releaseCache() {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!byAge_.empty()) evictOldest();
    peakLive_ = live_;
  }

  static CachingCpuAllocator* instance;

 private:
  struct Cached {
    void* block;
    size_t cls;
  };

  // What the cache may hold beyond the largest live set seen: the resident size stays within
  // peakLive + slack, so a step whose live tensors peak at 4 GB costs at most ~4.3 GB.
  int64_t slack() const { return slackFixed_ >= 0 ? slackFixed_ : std::max<int64_t>(int64_t{128} << 20, peakLive_ / 16); }

  void* take(size_t cls, size_t requested) {
    const auto bytes = static_cast<int64_t>(cls);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The same class, else the smallest kept block up to 1.25 times the size: it is resident already, where
      // mapping a new block costs page faults and, with the bound, an eviction.
      for (auto it = free_.lower_bound(cls); it != free_.end() && it->first <= cls + cls / 4; ++it) {
        if (it->second.empty()) continue;
        uint64_t age = it->second.back();
        it->second.pop_back();
        void* b = byAge_.at(age).block;
        byAge_.erase(age);
        cached_ -= static_cast<int64_t>(it->first);
        noteLive(b, it->first);
        ++hits_;
        return b;
      }
      // Room for the new block: the oldest cached blocks go back to the OS first.
      const int64_t bound = std::max(peakLive_, live_ + bytes) + slack();
      while (!byAge_.empty() && live_ + cached_ + bytes > bound) evictOldest();
    }
    void* b = map(cls);
    if (b == nullptr) {
      // Out of memory with blocks kept: give them all back and try once more before failing.
      releaseCache();
      b = map(cls);
    }
    // The message allocationFailure() (tensor/failure.cc) turns into an OutOfMemoryError with the size.
    TORCH_CHECK(b != nullptr, "difftune CPU cache: cannot map memory: you tried to allocate ", requested, " bytes.");
    std::lock_guard<std::mutex> lock(mutex_);
    noteLive(b, cls);
    ++misses_;
    return b;
  }

  void noteLive(void* b, size_t cls) {
    live_ += static_cast<int64_t>(cls);
    peakLive_ = std::max(peakLive_, live_);
    peak_ = std::max(peak_, live_ + cached_);
    sizes_.emplace(b, cls);
  }

  void evictOldest() {
    auto oldest = byAge_.begin();
    auto& ages = free_[oldest->second.cls];
    ages.erase(std::find(ages.begin(), ages.end(), oldest->first));
    unmap(oldest->second.block, oldest->second.cls);
    cached_ -= static_cast<int64_t>(oldest->second.cls);
    ++evictions_;
    byAge_.erase(oldest);
  }

  static void release(void* block) { instance->give(block); }

  static void rawRelease(void* block) {
    if (!instance->give(block)) instance->fallback_->raw_deleter()(block);
  }

  // False when the block is not one of ours (a small one raw_allocate took from the fallback).
  bool give(void* block) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = sizes_.find(block);
    if (it == sizes_.end()) return false;
    size_t cls = it->second;
    sizes_.erase(it);
    live_ -= static_cast<int64_t>(cls);
    uint64_t age = nextAge_++;
    byAge_.emplace(age, Cached{block, cls});
    free_[cls].push_back(age);
    cached_ += static_cast<int64_t>(cls);
    return true;
  }

  static void* map(size_t bytes) {
#ifdef __linux__
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
#else
    return std::malloc(bytes);
#endif
  }

  static void unmap(void* p, size_t bytes) {
#ifdef __linux__
    munmap(p, bytes);
#else
    (void)bytes;
    std::free(p);
#endif
  }

  c10::Allocator* fallback_;
  std::mutex mutex_;
  // Free blocks by class (ages, newest last) and by age (oldest first, for eviction).
  std::map<size_t, std::vector<uint64_t>> free_;
  std::map<uint64_t, Cached> byAge_;
  std::unordered_map<void*, size_t> sizes_;
  uint64_t nextAge_ = 0;
  int64_t slackFixed_ = -1;
  int64_t cached_ = 0;
  int64_t live_ = 0;
  int64_t peakLive_ = 0;
  int64_t peak_ = 0;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
  int64_t evictions_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

std::mutex installMutex;
std::string installSource;

}  // namespace

void installCpuAllocator() {
  std::lock_guard<std::mutex> lock(installMutex);
  if (!installSource.empty()) return;
  const char* off = std::getenv("DIFFTUNE_CPU_CACHE");
  if (off != nullptr && std::string(off) == "0") {
    installSource = "environment";
    return;
  }
  // Never destroyed: tensors still alive during static destruction at exit free into it.
  static CachingCpuAllocator* const allocator = new CachingCpuAllocator(c10::GetDefaultCPUAllocator());
  CachingCpuAllocator::instance = allocator;
  c10::SetCPUAllocator(allocator, /*priority=*/1);
  installSource = "difftune";
}

CpuAllocatorStats cpuAllocatorStats() {
  {
    std::lock_guard<std::mutex> lock(installMutex);
    if (installSource != "difftune") {
      CpuAllocatorStats s;
      s.source = installSource.empty() ? "unsupported" : installSource;
      return s;
    }
  }
  return CachingCpuAllocator::instance->stats();
}

void releaseCpuAllocatorCache() {
  if (CachingCpuAllocator::instance != nullptr) CachingCpuAllocator::instance->releaseCache();
}

}  // namespace difftune
