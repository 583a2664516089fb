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
std::unique_ptr<Scheduler> makeEulerAncestralDiscreteScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeLMSDiscreteScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeHeunDiscreteScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeKDPM2DiscreteScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeKDPM2AncestralDiscreteScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeUniPCMultistepScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeDEISMultistepScheduler(const SchedulerConfig& config);
std::unique_ptr<Scheduler> makeDPMSolverSinglestepScheduler(const SchedulerConfig& config);

}  // namespace difftune
