#include "binding/compute_thread.h"

#include <algorithm>
#include <cstdlib>
#include <future>
#include <vector>

#include "tensor/runtime.h"

namespace difftune {

namespace {

// Every live compute thread of the process (the main thread's and each worker_thread's).
struct LiveThreads {
  std::mutex mutex;
  std::vector<ComputeThread*> threads;
};

void parkAtExit() { parkAllComputeThreads(); }

// The registry is constructed before the atexit handler is registered, so the handler runs before the
// registry's destructor. The handler is only a fallback for exits that skip process 'exit' (load.ts
// parks there): libtorch and oneDNN create statics lazily, on first use, and those registered after
// this handler are destroyed before it runs.
LiveThreads& liveThreads() {
  static LiveThreads registry;
  static const bool registered = [] { return std::atexit(parkAtExit) == 0; }();
  (void)registered;
  return registry;
}

}  // namespace

void parkAllComputeThreads() {
  LiveThreads& live = liveThreads();
  std::lock_guard<std::mutex> lock(live.mutex);
  for (ComputeThread* t : live.threads) t->parkForExit();
}

ComputeThread::ComputeThread(Napi::Env env, int threads) : env_(env) {
  tsfn_ = decltype(tsfn_)::New(env, "difftune-compute", 0, 1, this, [](Napi::Env, void*, ComputeThread* self) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->tsfnOpen_ = false;
  });
  tsfnOpen_ = true;
  // An idle compute thread must not keep the process alive; jobStarted() refs it while work is pending.
  tsfn_.Unref(env);
  // Wait until the thread has set its torch thread count: an exit right after the addon loads must not
  // find it inside at::set_num_threads (which rebuilds OpenMP's and pthreadpool's pools) while the
  // static destructors of those pools run (seen as SIGSEGV, SIGILL and hangs in pthreadpool_destroy).
  std::promise<void> started;
  std::future<void> ready = started.get_future();
  thread_ = std::thread([this, threads, &started] { loop(threads, started); });
  ready.get();
  {
    LiveThreads& live = liveThreads();
    std::lock_guard<std::mutex> lock(live.mutex);
    live.threads.push_back(this);
  }
  // Registered after the thread-safe function, so it runs before that function is torn down.
  cleanupHook_ = env.AddCleanupHook(std::function<void()>([this] {
    cleanupHookRan_ = true;
    stop();
  }));
}

ComputeThread::~ComputeThread() {
  {
    LiveThreads& live = liveThreads();
    std::lock_guard<std::mutex> lock(live.mutex);
    live.threads.erase(std::remove(live.threads.begin(), live.threads.end(), this), live.threads.end());
  }
  stop();
  if (!cleanupHookRan_) cleanupHook_.Remove(Napi::Env(env_));
}

void ComputeThread::stop() {
  parkForExit();
  bool release = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    release = tsfnOpen_;
    tsfnOpen_ = false;
  }
  if (release) tsfn_.Release();
}

void ComputeThread::parkForExit() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void ComputeThread::enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw std::runtime_error("the compute thread has stopped (the environment is shutting down)");
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void ComputeThread::loop(int threads, std::promise<void>& started) {
  try {
    initComputeThread(threads);
  } catch (...) {
    // A failed thread-count setting leaves torch's default; jobs still run.
  }
  started.set_value();  // `started` lives on the constructor's stack: not touched after this line
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();  // jobs catch their own exceptions (see run())
  }
}

void ComputeThread::post(MainThreadFn fn) {
  auto data = std::make_unique<MainThreadFn>(std::move(fn));
  std::lock_guard<std::mutex> lock(mutex_);
  if (!tsfnOpen_) return;
  if (tsfn_.NonBlockingCall(data.get()) == napi_ok) data.release();  // callJs takes ownership
}

void ComputeThread::callJs(Napi::Env env, Napi::Function, ComputeThread*, MainThreadFn* fn) {
  std::unique_ptr<MainThreadFn> owned(fn);
  if (env == nullptr || !owned) return;  // environment going away: drop
  try {
    (*owned)(env);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());  // surfaces as 'uncaughtException', never an abort
  } catch (...) {
    napi_fatal_exception(env, toJsError(env, classifyCurrentException()).Value());
  }
}

void ComputeThread::jobStarted() {
  if (pending_++ == 0) tsfn_.Ref(env_);
}

void ComputeThread::jobFinished() {
  if (--pending_ == 0) tsfn_.Unref(env_);
}

}  // namespace difftune
