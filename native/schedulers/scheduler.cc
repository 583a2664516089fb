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
    case SchedulerKind::EulerAncestralDiscrete: return makeEulerAncestralDiscreteScheduler(config);
    case SchedulerKind::LMSDiscrete: return makeLMSDiscreteScheduler(config);
    case SchedulerKind::HeunDiscrete: return makeHeunDiscreteScheduler(config);
    case SchedulerKind::KDPM2Discrete: return makeKDPM2DiscreteScheduler(config);
    case SchedulerKind::KDPM2AncestralDiscrete: return makeKDPM2AncestralDiscreteScheduler(config);
    case SchedulerKind::UniPCMultistep: return makeUniPCMultistepScheduler(config);
    case SchedulerKind::DEISMultistep: return makeDEISMultistepScheduler(config);
    case SchedulerKind::DPMSolverSinglestep: return makeDPMSolverSinglestepScheduler(config);
  }
  throw std::logic_error("scheduler kind out of range");
}

}  // namespace difftune
