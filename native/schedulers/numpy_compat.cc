#include "schedulers/numpy_compat.h"

#include <cmath>
#include <stdexcept>

namespace difftune {

std::vector<double> npLinspace(double start, double stop, int64_t num) {
  std::vector<double> y(static_cast<size_t>(num < 0 ? 0 : num));
  if (num <= 0) return y;
  const int64_t div = num - 1;
  const double delta = stop - start;
  if (div > 0) {
    const double step = delta / static_cast<double>(div);
    for (int64_t i = 0; i < num; ++i) {
      double v = step == 0 ? static_cast<double>(i) / static_cast<double>(div) * delta : static_cast<double>(i) * step;
      y[static_cast<size_t>(i)] = v + start;
    }
    y[static_cast<size_t>(num - 1)] = stop;
  } else {
    y[0] = start;
  }
  return y;
}

std::vector<double> npArange(double start, double stop, double step) {
  if (step == 0) throw std::invalid_argument("arange step must not be zero");
  double count = std::ceil((stop - start) / step);
  std::vector<double> y;
  if (!(count > 0)) return y;
  y.resize(static_cast<size_t>(count));
  y[0] = start;
  if (y.size() > 1) y[1] = start + step;
  const double delta = (start + step) - start;
  for (size_t i = 2; i < y.size(); ++i) y[i] = start + static_cast<double>(i) * delta;
  return y;
}

double npRound(double value) { return std::nearbyint(value); }

double npInterpIndex(double x, const std::vector<double>& fp) {
  if (fp.empty()) throw std::invalid_argument("interp needs at least one point");
  const int64_t last = static_cast<int64_t>(fp.size()) - 1;
  if (std::isnan(x)) return x;
  if (x <= 0) return fp[0];
  if (x >= static_cast<double>(last)) return fp[static_cast<size_t>(last)];
  const int64_t j = static_cast<int64_t>(std::floor(x));  // xp[j] <= x < xp[j + 1]
  const double xj = static_cast<double>(j);
  if (xj == x) return fp[static_cast<size_t>(j)];
  const double yj = fp[static_cast<size_t>(j)];
  const double yj1 = fp[static_cast<size_t>(j + 1)];
  const double slope = (yj1 - yj) / ((xj + 1) - xj);
  double r = slope * (x - xj) + yj;
  if (std::isnan(r)) {
    r = slope * (x - (xj + 1)) + yj1;
    if (std::isnan(r) && yj == yj1) r = yj;
  }
  return r;
}

}  // namespace difftune
