// Reads the flat scheduler config object TypeScript builds (lib/schedulers/native-config.ts) into the
// plain SchedulerConfig struct, on the main thread. TypeScript validated it already; this checks
// every type again so a bad object is an error, never a crash.
#pragma once

#include <napi.h>

#include "schedulers/scheduler_config.h"

namespace difftune {

SchedulerConfig readSchedulerConfig(const Napi::Value& value, const std::string& param);

}  // namespace difftune
