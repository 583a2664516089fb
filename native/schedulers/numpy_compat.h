// The float64 array arithmetic diffusers does with numpy before casting timesteps and sigmas to
// float32, reproduced operation for operation: numpy's linspace and arange formulas, round half to
// even, and np.interp. A last-bit difference here can flip a rounded timestep, so no shortcuts.
#pragma once

#include <cstdint>
#include <vector>

namespace difftune {

// numpy.linspace(start, stop, num) (endpoint=True), float64.
std::vector<double> npLinspace(double start, double stop, int64_t num);

// numpy.arange(start, stop, step) for float64: ceil((stop − start) / step) values, the second being
// start + step and the rest start + i·((start + step) − start), as numpy fills them.
std::vector<double> npArange(double start, double stop, double step);

// numpy.round / numpy.rint: to nearest, ties to even.
double npRound(double value);

// numpy.interp(x, xp = 0, 1, …, fp.size() − 1, fp) with fp given in float64.
double npInterpIndex(double x, const std::vector<double>& fp);

}  // namespace difftune
