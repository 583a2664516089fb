#include "binding/compute_thread.h"

#include "tensor/runtime.h"

namespace difftune {

ComputeThread::ComputeThread(Napi::Env env, int threads) : env_(env) {
  tsfn_ = decltype(tsfn_)::New(env, "difftune-compute", 0, 1, this,
                               [](Napi::Env, void*, ComputeThread* self) {
                                 std::lock_guard<std::mutex> lock(self->mutex_);
                                 self->tsfnOpen_ = false;
                               });
  tsfnOpen_ = true;
  // An idle compute thread must not keep the process alive; jobStarted() refs it while work is pending.
  tsfn_.Unref(env);
  thread_ = std::thread([this, threads] { loop(threads); });
  // Registered after the thread-safe function, so it runs before that function is torn down.
  cleanupHook_ = env.AddCleanupHook(std::function<void()>([this] {
    cleanupHookRan_ = true;
    stop();
  }));
}

ComputeThread::~ComputeThread() {
  stop();
  if (!cleanupHookRan_) cleanupHook_.Remove(Napi::Env(env_));
}

void ComputeThread::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  bool release = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    release = tsfnOpen_;
    tsfnOpen_ = false;
  }
  if (release) tsfn_.Release();
}

void ComputeThread::enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw std::runtime_error("the compute thread has stopped (the environment is shutting down)");
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void ComputeThread::loop(int threads) {
  initComputeThread(threads);
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
