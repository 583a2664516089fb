// Module functions for pipeline glue (concat, classifier-free guidance) on the compute thread.
#pragma once

#include <napi.h>

namespace difftune {

void registerOps(Napi::Env env, Napi::Object exports);

}  // namespace difftune
