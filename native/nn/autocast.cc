#include "nn/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "tensor/failure.h"
#include "tensor/runtime.h"

// libtorch 2.4 replaced the per-device functions with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DIFFTUNE_AUTOCAST_BY_DEVICE 1
#endif

namespace difftune {

namespace {

bool enabled(c10::DeviceType d) {
#ifdef DIFFTUNE_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(d);
#else
  return d == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

void setEnabled(c10::DeviceType d, bool on) {
#ifdef DIFFTUNE_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(d, on);
#else
  if (d == c10::DeviceType::CPU)
    at::autocast::set_cpu_enabled(on);
  else
    at::autocast::set_enabled(on);
#endif
}

c10::ScalarType getDtype(c10::DeviceType d) {
#ifdef DIFFTUNE_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(d);
#else
  return d == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}

void setDtype(c10::DeviceType d, c10::ScalarType t) {
#ifdef DIFFTUNE_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(d, t);
#else
  if (d == c10::DeviceType::CPU)
    at::autocast::set_autocast_cpu_dtype(t);
  else
    at::autocast::set_autocast_gpu_dtype(t);
#endif
}

}  // namespace

bool autocastEnabled(c10::DeviceType device) { return enabled(device); }

std::optional<c10::ScalarType> currentAutocast(c10::DeviceType device) {
  return enabled(device) ? std::optional<c10::ScalarType>(getDtype(device)) : std::nullopt;
}

AutocastScope::AutocastScope(c10::DeviceType device, std::optional<c10::ScalarType> dtype) : device_(device) {
  if (!dtype) return;
  if (device != c10::DeviceType::CPU && device != c10::DeviceType::CUDA)
    throw InvalidArgument("autocast is available on CPU and CUDA only");
  if (device == c10::DeviceType::CPU && *dtype != c10::ScalarType::BFloat16)
    throw InvalidArgument("Expected \"bfloat16\" for autocast on the CPU (float16 autocast needs CUDA)");
  if (device == c10::DeviceType::CPU) noteCpuBf16Compute();
  prevEnabled_ = enabled(device);
  prevDtype_ = getDtype(device);
  setEnabled(device, true);
  setDtype(device, *dtype);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // Cast weights are cached for the scope's lifetime; drop them when the outermost scope ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  setEnabled(device_, prevEnabled_);
  setDtype(device_, prevDtype_);
}

}  // namespace difftune
