#include "schedulers/timestep_spacing.h"

#include <algorithm>

#include "schedulers/numpy_compat.h"

namespace difftune {

namespace {

std::vector<int64_t> roundedInts(const std::vector<double>& values) {
  std::vector<int64_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = static_cast<int64_t>(npRound(values[i]));
  return out;
}

std::vector<double> multiplesOf(int64_t count, int64_t ratio) {
  std::vector<double> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = static_cast<double>(i * ratio);
  return out;
}

template <typename T>
std::vector<T> reversed(std::vector<T> v) {
  std::reverse(v.begin(), v.end());
  return v;
}

}  // namespace

std::vector<int64_t> ddpmTimesteps(TimestepSpacing spacing, int64_t numTrain, int64_t n, int64_t stepsOffset) {
  switch (spacing) {
    case TimestepSpacing::Linspace: return reversed(roundedInts(npLinspace(0, static_cast<double>(numTrain - 1), n)));
    case TimestepSpacing::Leading: {
      std::vector<int64_t> t = reversed(roundedInts(multiplesOf(n, numTrain / n)));
      for (int64_t& v : t) v += stepsOffset;
      return t;
    }
    case TimestepSpacing::Trailing: {
      double ratio = static_cast<double>(numTrain) / static_cast<double>(n);
      std::vector<int64_t> t = roundedInts(npArange(static_cast<double>(numTrain), 0, -ratio));
      for (int64_t& v : t) v -= 1;
      return t;
    }
  }
  return {};
}

std::vector<float> eulerTimesteps(TimestepSpacing spacing, int64_t numTrain, int64_t n, int64_t stepsOffset) {
  std::vector<float> out;
  switch (spacing) {
    case TimestepSpacing::Linspace:
      for (double v : reversed(npLinspace(0, static_cast<double>(numTrain - 1), n))) out.push_back(static_cast<float>(v));
      break;
    case TimestepSpacing::Leading:
      for (int64_t v : reversed(roundedInts(multiplesOf(n, numTrain / n))))
        out.push_back(static_cast<float>(v) + static_cast<float>(stepsOffset));
      break;
    case TimestepSpacing::Trailing: {
      double ratio = static_cast<double>(numTrain) / static_cast<double>(n);
      for (double v : npArange(static_cast<double>(numTrain), 0, -ratio)) out.push_back(static_cast<float>(npRound(v)) - 1.0f);
      break;
    }
  }
  return out;
}

std::vector<int64_t> dpmTimesteps(TimestepSpacing spacing, int64_t numTrain, int64_t n, int64_t stepsOffset, int64_t lastTimestep) {
  std::vector<int64_t> t;
  switch (spacing) {
    case TimestepSpacing::Linspace:
      t = reversed(roundedInts(npLinspace(0, static_cast<double>(lastTimestep - 1), n + 1)));
      t.pop_back();
      return t;
    case TimestepSpacing::Leading:
      t = reversed(roundedInts(multiplesOf(n + 1, lastTimestep / (n + 1))));
      t.pop_back();
      for (int64_t& v : t) v += stepsOffset;
      return t;
    case TimestepSpacing::Trailing: {
      double ratio = static_cast<double>(numTrain) / static_cast<double>(n);
      t = roundedInts(npArange(static_cast<double>(lastTimestep), 0, -ratio));
      for (int64_t& v : t) v -= 1;
      return t;
    }
  }
  return t;
}

std::vector<int64_t> pndmBaseTimesteps(TimestepSpacing spacing, int64_t numTrain, int64_t n, int64_t stepsOffset) {
  switch (spacing) {
    case TimestepSpacing::Linspace: return roundedInts(npLinspace(0, static_cast<double>(numTrain - 1), n));
    case TimestepSpacing::Leading: {
      std::vector<int64_t> t = roundedInts(multiplesOf(n, numTrain / n));
      for (int64_t& v : t) v += stepsOffset;
      return t;
    }
    case TimestepSpacing::Trailing: {
      double ratio = static_cast<double>(numTrain) / static_cast<double>(n);
      std::vector<int64_t> t = reversed(roundedInts(npArange(static_cast<double>(numTrain), 0, -ratio)));
      for (int64_t& v : t) v -= 1;
      return t;
    }
  }
  return {};
}

}  // namespace difftune
