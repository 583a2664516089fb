// The trainer's hook for data-parallel training: one implementation per communication library
// (native/dist/), none when training in one process. Torch-free: at::Tensor is only named.
#pragma once

#include <vector>

namespace at {
class Tensor;
}

namespace difftune {

class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  // Called by Trainer::step once per optimizer step, before the norm and clipping, with the gradient
  // of every trainable parameter (all defined, the same order on every process). Replaces them in
  // place with their mean over the processes; returns whether any process saw a non-finite loss
  // (`localBad` is this one's), so that every process skips the same steps.
  virtual bool reduceGradients(std::vector<at::Tensor>& grads, bool localBad) = 0;
  // Copies rank 0's values into `tensors` on every process (the same list everywhere).
  virtual void broadcastFromRoot(std::vector<at::Tensor>& tensors) = 0;
};

}  // namespace difftune
