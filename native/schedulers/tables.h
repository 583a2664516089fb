// The training tables every family starts from, computed the way diffusers does so they match to
// float32 rounding: betas from a float32 linspace (of √beta for scaled_linear), squaredcos_cap_v2 in
// double then cast, alphas_cumprod as a float32 cumprod.
#pragma once

#include <ATen/core/Tensor.h>

#include "schedulers/scheduler_config.h"

namespace difftune {

// float32 [numTrainTimesteps]; honours trained_betas and rescale_betas_zero_snr.
at::Tensor makeBetas(const SchedulerConfig& config);

// Rescales betas to zero terminal SNR (Lin et al. 2023, Algorithm 1), in float32 like diffusers.
at::Tensor rescaleZeroTerminalSnr(const at::Tensor& betas);

// cumprod(1 − betas) in float32.
at::Tensor makeAlphasCumprod(const at::Tensor& betas);

}  // namespace difftune
