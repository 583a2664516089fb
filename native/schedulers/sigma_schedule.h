// Sigma-space helpers shared by Euler and DPM-Solver: mapping a sigma back to a (fractional) training
// timestep, and the Karras and Lu spacings. Written against numpy 1.x dtype rules, which the diffusers
// fixtures were made with: float32 arrays combined with float64 scalars stay float32.
#pragma once

#include <cstdint>
#include <vector>

namespace difftune {

// np.log of a float32 array, element by element in float32.
std::vector<float> logOfFloat32(const std::vector<float>& values);

// diffusers' _sigma_to_t: the fractional index of `sigma` in the ascending `logSigmas` table,
// interpolating linearly in log sigma (clipped to the table).
double sigmaToT(double sigma, const std::vector<float>& logSigmas);

// The same lookup when diffusers runs it on a 0-d torch tensor (KDPM2's interpolated sigmas): torch's
// promotion keeps the final (1 − w)·low + w·high in float32 instead of numpy's float64.
float sigmaToTFloat32(double sigma, const std::vector<float>& logSigmas);

// Karras et al. (2022) spacing, rho = 7, from sigmaMax down to sigmaMin (n values, float64).
std::vector<double> karrasSigmas(double sigmaMin, double sigmaMax, int64_t n);

// Lu et al. (2022) spacing: uniform in log-SNR, from lambdaMax down to lambdaMin (n values).
std::vector<double> luLambdas(double lambdaMin, double lambdaMax, int64_t n);

}  // namespace difftune
