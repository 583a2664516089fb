// Numerical integration for LMSDiscreteScheduler's coefficients, which diffusers gets from
// scipy.integrate.quad (QUADPACK's QAGS). The integrands there are Lagrange basis polynomials of
// degree ≤ 3, which the 21-point Gauss–Kronrod rule QAGS starts with integrates exactly, so QAGS
// returns after that first rule. integrateGK21 applies the same rule (QUADPACK's nodes, weights,
// summation order and error estimate), so results agree with scipy's to the last bits; if the error
// estimate ever misses the tolerance it bisects adaptively (QAG-style, without QAGS's epsilon
// extrapolation, which only matters for integrable singularities these integrands never have).
#pragma once

#include <functional>

namespace difftune {

struct QuadratureResult {
  double value;
  double errorEstimate;
};

// ∫_a^b f; as scipy.integrate.quad(f, a, b, epsabs, epsrel) for smooth f (a > b allowed).
QuadratureResult integrateGK21(const std::function<double(double)>& f, double a, double b, double epsabs = 1.49e-8, double epsrel = 1.49e-8,
                               int maxIntervals = 50);

}  // namespace difftune
