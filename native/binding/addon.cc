// Addon registration: the classes and functions JS sees (declared in lib/native/types.ts).
#include <napi.h>

#include <cstdlib>
#include <string>
#include <thread>

#ifdef __linux__
#include <sched.h>
#endif
#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>
#endif

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/data_wrap.h"
#include "binding/dist_wrap.h"
#include "binding/errors.h"
#include "binding/generator_wrap.h"
#include "binding/ops_wrap.h"
#include "binding/scheduler_wrap.h"
#include "binding/tensor_wrap.h"
#include "binding/trainer_wrap.h"
#include "binding/unet_wrap.h"
#include "binding/vae_trainer_wrap.h"
#include "binding/vae_wrap.h"
#include "binding/clip_text_wrap.h"
#include "tensor/cpu_allocator.h"
#include "tensor/runtime.h"

namespace difftune {

namespace {

// The cores this process may run on: the affinity mask (taskset, cgroups' cpusets, containers) where
// the OS has one, as Node's os.availableParallelism() counts them.
int usableCores() {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(cores);
}

// OMP_NUM_THREADS wins when set (the convention every torch user knows); otherwise every usable core,
// since torch's own default here is 1. Set once, when the compute thread starts: load.ts queues no
// thread-count job of its own, so no un-awaited work is in flight when a script exits right after loading.
// glibc's malloc raises its mmap threshold (up to 32 MiB) each time a large block is freed, after which
// blocks of that size come from arenas that keep freed memory: a training step's resident size then
// runs gigabytes ahead of its live tensors (SD 1.5 LoRA + checkpointing: 7.3 GB peak, 5.8 GB with a
// fixed 1 MiB threshold). So fix the threshold at 1 MiB, and trim the heap top beyond 2 MiB, unless the
// user tunes malloc themselves (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, GLIBC_TUNABLES' malloc
// tunables) or turns this off with DIFFTUNE_MALLOC_TUNING=0. Process-wide and once: workers share it.
// libtorch's own blocks of 256 KiB and more no longer reach malloc (tensor/cpu_allocator.cc reuses them
// without fresh page faults); the threshold governs everything else.
struct AllocatorTuning {
  std::string source;  // "difftune", "environment" or "unsupported"
  int64_t mmapThreshold = -1;
  int64_t trimThreshold = -1;
};

constexpr int64_t kMmapThreshold = 1 << 20;
constexpr int64_t kTrimThreshold = 2 << 20;

const AllocatorTuning& tuneAllocator() {
  static const AllocatorTuning tuning = [] {
    AllocatorTuning t;
#if defined(__linux__) && defined(__GLIBC__)
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    const char* off = std::getenv("DIFFTUNE_MALLOC_TUNING");
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
        (tunables && std::string(tunables).find("glibc.malloc.") != std::string::npos) || (off && std::string(off) == "0")) {
      t.source = "environment";
      return t;
    }
    if (mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThreshold)) == 1 &&
        mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThreshold)) == 1) {
      t.source = "difftune";
      t.mmapThreshold = kMmapThreshold;
      t.trimThreshold = kTrimThreshold;
    } else {
      t.source = "unsupported";
    }
#else
    t.source = "unsupported";
#endif
    return t;
  }();
  return tuning;
}

int defaultThreads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n <= 1024) return static_cast<int>(n);
  }
  return usableCores();
}

Napi::Value runtimeInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    RuntimeInfo r = runtimeInfo();
    Napi::Object o = Napi::Object::New(env);
    o.Set("torchVersion", r.torchVersion);
    o.Set("torchMajor", r.torchMajor);
    o.Set("torchMinor", r.torchMinor);
    o.Set("cudaAvailable", r.cudaAvailable);
    o.Set("cudaDeviceCount", r.cudaDeviceCount);
    o.Set("parallelInfo", r.parallelInfo);
    o.Set("buildConfig", r.buildConfig);
    o.Set("onednn", r.onednn);
    o.Set("napiVersion", NAPI_VERSION);
    const AllocatorTuning& a = tuneAllocator();
    Napi::Object alloc = Napi::Object::New(env);
    alloc.Set("source", a.source);
    alloc.Set("mmapThreshold", a.mmapThreshold < 0 ? env.Null() : Napi::Number::New(env, static_cast<double>(a.mmapThreshold)));
    alloc.Set("trimThreshold", a.trimThreshold < 0 ? env.Null() : Napi::Number::New(env, static_cast<double>(a.trimThreshold)));
    o.Set("malloc", alloc);
    CpuAllocatorStats c = cpuAllocatorStats();
    Napi::Object cache = Napi::Object::New(env);
    cache.Set("source", c.source);
    cache.Set("minBlockBytes", static_cast<double>(c.minBlockBytes));
    cache.Set("slackBytes", static_cast<double>(c.slackBytes));
    cache.Set("cachedBytes", static_cast<double>(c.cachedBytes));
    cache.Set("liveBytes", static_cast<double>(c.liveBytes));
    cache.Set("peakLiveBytes", static_cast<double>(c.peakLiveBytes));
    cache.Set("peakBytes", static_cast<double>(c.peakBytes));
    cache.Set("hits", static_cast<double>(c.hits));
    cache.Set("misses", static_cast<double>(c.misses));
    cache.Set("evictions", static_cast<double>(c.evictions));
    o.Set("cpuCache", cache);
    return o;
  });
}

// Synchronous: returning kept blocks to the OS is a few munmap calls, and the cache's own lock keeps it
// safe next to a running job.
Napi::Value releaseCpuCacheJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    releaseCpuAllocatorCache();
    return env.Undefined();
  });
}

Napi::Value setThreadsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    int threads = static_cast<int>(expectInt(argAt(info, 0), "threads", 1, 1024));
    return addonState(env).compute->run(
        env,
        [threads] {
          setIntraOpThreads(threads);
          return intraOpThreads();
        },
        [](Napi::Env env, int& n) -> Napi::Value { return Napi::Number::New(env, n); });
  });
}

Napi::Value getThreadsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    return addonState(env).compute->run(
        env, [] { return intraOpThreads(); }, [](Napi::Env env, int& n) -> Napi::Value { return Napi::Number::New(env, n); });
  });
}

Napi::Value gemmBenchmarkJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    Napi::Object options = expectObject(argAt(info, 0), "options");
    int n = static_cast<int>(expectInt(options.Get("n"), "options.n", 1, 16384));
    int reps = static_cast<int>(expectInt(options.Get("reps"), "options.reps", 1, 10000));
    std::string device = expectString(options.Get("device"), "options.device");
    std::string dtype = expectString(options.Get("dtype"), "options.dtype");
    return addonState(env).compute->run(
        env, [=] { return gemmBenchmark(n, reps, device, dtype); },
        [](Napi::Env env, GemmResult& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("seconds", r.seconds);
          o.Set("gflops", r.gflops);
          return o;
        });
  });
}

Napi::Value prepareForExitJs(const Napi::CallbackInfo& info) {
  parkAllComputeThreads();
  return info.Env().Undefined();
}

Napi::Value pendingJobsJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), addonState(info.Env()).compute->pending());
}

Napi::Object registerAll(Napi::Env env, Napi::Object exports);

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  return boundary(env, [&] { return registerAll(env, exports); });
}

namespace {

Napi::Object registerAll(Napi::Env env, Napi::Object exports) {
  tuneAllocator();
  installCpuAllocator();
  auto state = std::make_unique<AddonState>();
  state->compute = std::make_unique<ComputeThread>(env, defaultThreads());
  Napi::Function tensor = TensorWrap::define(env);
  state->tensorConstructor = Napi::Persistent(tensor);
  Napi::Function unet = UNetWrap::define(env);
  state->unetConstructor = Napi::Persistent(unet);
  Napi::Function trainer = TrainerWrap::define(env);
  state->trainerConstructor = Napi::Persistent(trainer);
  Napi::Function vae = VaeWrap::define(env);
  state->vaeConstructor = Napi::Persistent(vae);
  Napi::Function vaeTrainer = VaeTrainerWrap::define(env);
  state->vaeTrainerConstructor = Napi::Persistent(vaeTrainer);
  Napi::Function clipText = ClipTextWrap::define(env);
  state->clipTextConstructor = Napi::Persistent(clipText);
  Napi::Function scheduler = SchedulerWrap::define(env);
  state->schedulerConstructor = Napi::Persistent(scheduler);
  Napi::Function generator = GeneratorWrap::define(env);
  state->generatorConstructor = Napi::Persistent(generator);
  env.SetInstanceData<AddonState>(state.release());  // the environment owns it from here

  exports.Set("NativeTensor", tensor);
  exports.Set("NativeScheduler", scheduler);
  exports.Set("NativeGenerator", generator);
  exports.Set("NativeUNet", unet);
  exports.Set("NativeTrainer", trainer);
  exports.Set("NativeAutoencoderKL", vae);
  exports.Set("NativeVaeTrainer", vaeTrainer);
  exports.Set("NativeCLIPTextModel", clipText);
  exports.Set("runtimeInfo", Napi::Function::New<runtimeInfoJs>(env, "runtimeInfo"));
  exports.Set("setThreads", Napi::Function::New<setThreadsJs>(env, "setThreads"));
  exports.Set("releaseCpuCache", Napi::Function::New<releaseCpuCacheJs>(env, "releaseCpuCache"));
  exports.Set("getThreads", Napi::Function::New<getThreadsJs>(env, "getThreads"));
  exports.Set("gemmBenchmark", Napi::Function::New<gemmBenchmarkJs>(env, "gemmBenchmark"));
  exports.Set("pendingJobs", Napi::Function::New<pendingJobsJs>(env, "pendingJobs"));
  exports.Set("prepareForExit", Napi::Function::New<prepareForExitJs>(env, "prepareForExit"));
  registerOps(env, exports);
  registerData(env, exports);
  registerDist(env, exports);
  return exports;
}

}  // namespace

AddonState& addonState(Napi::Env env) {
  AddonState* state = env.GetInstanceData<AddonState>();
  if (state == nullptr) throw std::logic_error("difftune addon state missing");
  return *state;
}

}  // namespace difftune

static Napi::Object InitDifftune(Napi::Env env, Napi::Object exports) { return difftune::init(env, exports); }

NODE_API_MODULE(difftune, InitDifftune)
