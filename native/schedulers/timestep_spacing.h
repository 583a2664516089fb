// Each family's inference timesteps for timestep_spacing leading / trailing / linspace, exactly as
// diffusers computes them with numpy (so a .5 rounds the same way, and a trailing schedule whose
// float arange yields one extra value does here too).
#pragma once

#include <cstdint>
#include <vector>

#include "schedulers/scheduler_config.h"

namespace difftune {

// DDPM and DDIM: n descending integer timesteps.
std::vector<int64_t> ddpmTimesteps(TimestepSpacing spacing, int64_t numTrain, int64_t n, int64_t stepsOffset);

// Euler: n descending float32 timesteps (as float values).
std::vector<float> eulerTimesteps(TimestepSpacing spacing, int64_t numTrain, int64_t n, int64_t stepsOffset);

// DPM-Solver: n descending integer timesteps ending before lastTimestep (from lambda_min_clipped).
std::vector<int64_t> dpmTimesteps(TimestepSpacing spacing, int64_t numTrain, int64_t n, int64_t stepsOffset, int64_t lastTimestep);

// PNDM's base grid (its `_timesteps`): n ascending integer timesteps, before the PRK/PLMS expansion.
std::vector<int64_t> pndmBaseTimesteps(TimestepSpacing spacing, int64_t numTrain, int64_t n, int64_t stepsOffset);

}  // namespace difftune
