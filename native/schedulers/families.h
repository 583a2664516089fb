// One constructor per family (each defined in its own file); makeScheduler picks among them.
#pragma once

#include <memory>

#include "schedulers/scheduler.h"

namespace difftune {

std::unique_ptr<Scheduler> makeDDPMScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeDDIMScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeEulerDiscreteScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeDPMSolverMultistepScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makePNDMScheduler(const SchedulerConfig& config);

}  // namespace difftune
