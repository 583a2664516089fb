#include "schedulers/quadrature.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

namespace difftune {

namespace {

// QUADPACK dqk21: Kronrod abscissae (xgk[1], xgk[3], … are the 10-point Gauss nodes), Kronrod weights,
// Gauss weights.
constexpr double kXgk[11] = {0.995657163025808080735527280689003, 0.973906528517171720077964012084452, 0.930157491355708226001207180059508,
                             0.865063366688984510732096688423493, 0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
                             0.562757134668604683339000099272694, 0.433395394129247190799265943165784, 0.294392862701460198131126603103866,
                             0.148874338981631210884826001129720, 0.000000000000000000000000000000000};
constexpr double kWgk[11] = {0.011694638867371874278064396062192, 0.032558162307964727478818972459390, 0.054755896574351996031381300244580,
                             0.075039674810919952767043140916190, 0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
                             0.123491976262065851077958109831074, 0.134709217311473325928054001771707, 0.142775938577060080797094273138717,
                             0.147739104901338491374841515972068, 0.149445554002916905664936468389821};
constexpr double kWg[5] = {0.066671344308688137593568809893332, 0.149451349150580593145776339657697, 0.219086362515982043995534934228163,
                           0.269266719309996355091226921569469, 0.295524224714752870173892994651338};

struct Rule {
  double result, abserr, resabs, resasc;
};

// One 21-point Gauss–Kronrod evaluation, in dqk21's order of operations.
Rule gk21(const std::function<double(double)>& f, double a, double b) {
  const double centr = 0.5 * (a + b);
  const double hlgth = 0.5 * (b - a);
  const double dhlgth = std::fabs(hlgth);
  double fv1[10], fv2[10];
  double resg = 0.0;
  const double fc = f(centr);
  double resk = kWgk[10] * fc;
  double resabs = std::fabs(resk);
  for (int j = 0; j < 5; ++j) {
    const int jtw = 2 * j + 1;
    const double absc = hlgth * kXgk[jtw];
    const double fval1 = f(centr - absc), fval2 = f(centr + absc);
    fv1[jtw] = fval1;
    fv2[jtw] = fval2;
    const double fsum = fval1 + fval2;
    resg = resg + kWg[j] * fsum;
    resk = resk + kWgk[jtw] * fsum;
    resabs = resabs + kWgk[jtw] * (std::fabs(fval1) + std::fabs(fval2));
  }
  for (int j = 0; j < 5; ++j) {
    const int jtwm1 = 2 * j;
    const double absc = hlgth * kXgk[jtwm1];
    const double fval1 = f(centr - absc), fval2 = f(centr + absc);
    fv1[jtwm1] = fval1;
    fv2[jtwm1] = fval2;
    const double fsum = fval1 + fval2;
    resk = resk + kWgk[jtwm1] * fsum;
    resabs = resabs + kWgk[jtwm1] * (std::fabs(fval1) + std::fabs(fval2));
  }
  const double reskh = resk * 0.5;
  double resasc = kWgk[10] * std::fabs(fc - reskh);
  for (int j = 0; j < 10; ++j) resasc = resasc + kWgk[j] * (std::fabs(fv1[j] - reskh) + std::fabs(fv2[j] - reskh));
  Rule r{resk * hlgth, std::fabs((resk - resg) * hlgth), resabs * dhlgth, resasc * dhlgth};
  if (r.resasc != 0.0 && r.abserr != 0.0) r.abserr = r.resasc * std::min(1.0, std::pow(200.0 * r.abserr / r.resasc, 1.5));
  if (r.resabs > DBL_MIN / (50.0 * DBL_EPSILON)) r.abserr = std::max(50.0 * DBL_EPSILON * r.resabs, r.abserr);
  return r;
}

struct Interval {
  double a, b, result, error;
};

}  // namespace

QuadratureResult integrateGK21(const std::function<double(double)>& f, double a, double b, double epsabs, double epsrel, int maxIntervals) {
  const Rule first = gk21(f, a, b);
  double result = first.result, abserr = first.abserr;
  double errbnd = std::max(epsabs, epsrel * std::fabs(result));
  // dqagse's exits after the first rule: converged, exact (zero error), or limited by round-off.
  if ((abserr <= errbnd && abserr != first.resabs) || abserr == 0.0 || (abserr <= 100.0 * DBL_EPSILON * first.resabs && abserr > errbnd)) {
    return {result, abserr};
  }
  // Globally adaptive bisection of the interval with the largest error estimate.
  std::vector<Interval> intervals{{a, b, first.result, first.abserr}};
  while (static_cast<int>(intervals.size()) < maxIntervals) {
    auto worst =
        std::max_element(intervals.begin(), intervals.end(), [](const Interval& x, const Interval& y) { return x.error < y.error; });
    const Interval w = *worst;
    intervals.erase(worst);
    const double mid = 0.5 * (w.a + w.b);
    const Rule left = gk21(f, w.a, mid), right = gk21(f, mid, w.b);
    intervals.push_back({w.a, mid, left.result, left.abserr});
    intervals.push_back({mid, w.b, right.result, right.abserr});
    result = 0.0;
    abserr = 0.0;
    for (const Interval& i : intervals) {
      result += i.result;
      abserr += i.error;
    }
    errbnd = std::max(epsabs, epsrel * std::fabs(result));
    if (abserr <= errbnd) break;
  }
  return {result, abserr};
}

}  // namespace difftune
