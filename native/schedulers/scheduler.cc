#include "schedulers/scheduler.h"

#include <stdexcept>

#include "schedulers/families.h"

namespace difftune {

std::unique_ptr<Scheduler> makeScheduler(const SchedulerConfig& config) {
  switch (config.kind) {
    case SchedulerKind::DDPM: return makeDDPMScheduler(config);
    case SchedulerKind::DDIM: return makeDDIMScheduler(config);
    case SchedulerKind::EulerDiscrete: return makeEulerDiscreteScheduler(config);
    case SchedulerKind::DPMSolverMultistep: return makeDPMSolverMultistepScheduler(config);
    case SchedulerKind::PNDM: return makePNDMScheduler(config);
  }
  throw std::logic_error("scheduler kind out of range");
}

}  // namespace difftune
