// The one error boundary: every N-API entry point and every compute-thread job ends here, so any C++
// failure reaches JS as an Error with a `code` and a clean message — never an abort.
#pragma once

#include <napi.h>

#include "tensor/failure.h"

namespace difftune {

Napi::Error toJsError(Napi::Env env, const Failure& failure);

// Runs fn, turning any C++ exception into a JS exception. Napi::Error passes through unchanged.
template <typename Fn>
auto boundary(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw toJsError(env, classifyCurrentException());
  }
}

}  // namespace difftune
