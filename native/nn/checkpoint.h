// Gradient checkpointing: run a block without keeping its activations, and recompute them during
// backward. libtorch's C++ API has no torch.utils.checkpoint, so this is the reentrant variant
// written as a custom autograd function.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace difftune {

class Module;

using BlockFn = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;

// outputs = fn(inputs), with only `inputs` kept for backward. Parameters used by fn (those of `block`
// and its LoRA adapters) receive their gradients when backward recomputes fn, also when no input
// requires grad (a frozen stem before a trainable block, LoRA-only training). Undefined inputs are
// allowed (passed through as undefined). The CPU random state and the LoRA dropout keys are replayed
// so dropout masks match between the two runs.
std::vector<at::Tensor> checkpoint(const BlockFn& fn, const std::vector<at::Tensor>& inputs, Module& block);

using LayerFn = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

// One layer (a resnet, a transformer) with one output: through checkpoint() when `recompute`, else
// fn(inputs) as it is. diffusers checkpoints at this grain, so a recomputation holds one layer's
// activations, not a whole down/up block's.
at::Tensor checkpointLayer(bool recompute, const LayerFn& fn, const std::vector<at::Tensor>& inputs, Module& layer);

}  // namespace difftune
