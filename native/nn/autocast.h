// Mixed precision: an RAII scope that enables libtorch's autocast for one device type with a
// lower-precision dtype (bf16 on CPU/CUDA, fp16 on CUDA), restoring the previous state on exit.
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <optional>

namespace difftune {

// Whether autocast is on for this device type in the calling thread.
bool autocastEnabled(c10::DeviceType device);

// The calling thread's autocast dtype for this device type, or nullopt when autocast is off: what an
// AutocastScope needs to re-enter the same state later (gradient checkpointing's recomputation).
std::optional<c10::ScalarType> currentAutocast(c10::DeviceType device);

class AutocastScope {
 public:
  // dtype nullopt: no autocast (a no-op scope).
  AutocastScope(c10::DeviceType device, std::optional<c10::ScalarType> dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_;
  bool prevEnabled_ = false;
  c10::ScalarType prevDtype_ = c10::ScalarType::Float;
};

}  // namespace difftune
