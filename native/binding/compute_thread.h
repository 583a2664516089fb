// One dedicated OS thread runs all torch work, in submission order. libtorch keeps the intra-op thread
// count (OpenMP), grad mode and autocast per OS thread, so one thread keeps them set once, and "one
// operation per model at a time" holds by construction. JS sees Promises; results and progress come
// back through one thread-safe function, so nothing on this thread ever touches JS directly.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "binding/errors.h"
#include "tensor/failure.h"

namespace difftune {

class ComputeThread {
 public:
  using MainThreadFn = std::function<void(Napi::Env)>;

  ComputeThread(Napi::Env env, int threads);
  ~ComputeThread();
  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;

  // Runs `work()` on the compute thread; `done(env, result)` turns its result into a JS value on the
  // main thread. A C++ exception from either becomes the Promise's rejection (via the boundary).
  template <typename Work, typename Done>
  Napi::Promise run(Napi::Env env, Work work, Done done);

  // Work without a result: the Promise resolves to undefined.
  template <typename Work>
  Napi::Promise runVoid(Napi::Env env, Work work) {
    return run(
        env,
        [work = std::move(work)]() mutable {
          work();
          return true;
        },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  }

  // Called from the compute thread: runs fn on the main thread soon (progress events, completions).
  // Dropped silently once the environment is shutting down.
  void post(MainThreadFn fn);

  // Stops accepting work, waits for the running job, joins. Idempotent.
  void stop();

  // For process exit (process.exit() runs no environment cleanup hooks, only atexit handlers and
  // static destructors): drops queued work and waits for the running job, touching no JS state, so
  // libtorch's and OpenMP's static destructors never run under a busy compute thread.
  void parkForExit();

  // Jobs submitted and not yet completed (main thread only).
  int pending() const { return pending_; }

 private:
  static void callJs(Napi::Env env, Napi::Function, ComputeThread*, MainThreadFn* fn);
  void enqueue(std::function<void()> task);
  void loop(int threads, std::promise<void>& started);
  void jobStarted();
  void jobFinished();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  bool tsfnOpen_ = false;
  int pending_ = 0;
  napi_env env_;
  bool cleanupHookRan_ = false;
  Napi::Env::CleanupHook<std::function<void()>> cleanupHook_;
  Napi::TypedThreadSafeFunction<ComputeThread, MainThreadFn, &ComputeThread::callJs> tsfn_;
  std::thread thread_;
};

// Parks every compute thread of the process (see parkForExit). Called from the main thread's process
// 'exit' event: after it, C's exit() runs static destructors, and libtorch's and oneDNN's must not run
// under a busy compute thread (seen as SIGSEGV in dnnl_primitive_execute, SIGILL and hangs in
// pthreadpool_destroy). Blocks until running jobs finish; queued jobs are dropped.
void parkAllComputeThreads();

template <typename Work, typename Done>
Napi::Promise ComputeThread::run(Napi::Env env, Work work, Done done) {
  using Result = decltype(work());
  auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = deferred->Promise();
  jobStarted();
  try {
    enqueue([this, deferred, work = std::move(work), done = std::move(done)]() mutable {
      auto result = std::make_shared<std::optional<Result>>();
      auto failure = std::make_shared<std::optional<Failure>>();
      try {
        result->emplace(work());
      } catch (...) {
        failure->emplace(classifyCurrentException());
      }
      post([this, deferred, result, failure, done](Napi::Env env) mutable {
        jobFinished();
        if (failure->has_value()) {
          deferred->Reject(toJsError(env, **failure).Value());
          return;
        }
        try {
          deferred->Resolve(done(env, **result));
        } catch (const Napi::Error& e) {
          deferred->Reject(e.Value());
        } catch (...) {
          deferred->Reject(toJsError(env, classifyCurrentException()).Value());
        }
      });
    });
  } catch (...) {
    jobFinished();
    throw;
  }
  return promise;
}

}  // namespace difftune
