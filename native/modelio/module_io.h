// What every native model facade does with its module tree, written once: parameter listings, strict
// state-dict loading, copies of the weights, device/dtype moves, the forward-backward-MSE and handing
// out gradients. Every model lists, loads and copies its weights with these; the U-Net moves and trains
// its own way (LoRA slots).
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "nn/model_types.h"
#include "nn/module.h"

namespace difftune {

std::vector<ParameterInfo> parameterInfos(const Module& model);

// Copies every weight in (converting dtype/device to the parameter's). Strict: one error lists every
// missing, unexpected, duplicate and wrongly shaped tensor, and nothing changes unless all match.
// Names in `ignored` (buffers older checkpoints carry) are accepted and skipped. With `floatsOnly`
// a weight of an integer or bool dtype is an error too; without it, it is converted like any other.
void loadModuleStateDict(Module& model, const NamedTensors& weights, const std::string& source, const std::set<std::string>& ignored = {},
                         bool floatsOnly = true);

// The same strict check as loadModuleStateDict from names, shapes and dtypes alone (a file's header), so a
// model can be filled one tensor at a time afterwards without ever holding a second copy of its weights.
void checkModuleStateDict(const Module& model, const std::vector<ParameterInfo>& weights, const std::string& source,
                          const std::set<std::string>& ignored = {}, bool floatsOnly = true);

// Copies some of the weights in (converting dtype/device to the parameter's), after checkModuleStateDict
// passed for the whole set. Names in `ignored` are skipped; an unknown name or a wrong shape is an error.
void copyModuleWeights(Module& model, const NamedTensors& weights, const std::string& source, const std::set<std::string>& ignored = {});

// Private copies of the parameters, in registration (checkpoint) order.
NamedTensors moduleStateDict(const Module& model);

// Moves every parameter to `device` and `dtype`, keeping requires_grad.
void moveModule(Module& model, const std::string& device, DType dtype);

// Re-initialises every layer from `seed` (from-scratch training): on the CPU in float32, reproducible
// across devices, then moved back to `device` and `dtype`.
void initializeModule(Module& model, uint64_t seed, const std::string& device, DType dtype);

// Drops every parameter's .grad (before a backward, so gradients are never accumulated across calls).
void clearGradients(Module& model);

// The gradients of `names` (all parameters when empty) after a backward, zeros where a parameter got
// none; then clears them. An unknown name is an InvalidArgument.
NamedTensors takeGradients(Module& model, const std::vector<std::string>& names);

// loss = mean((forward() − target)²), computed in float32; backward; the gradients of `names` (as
// takeGradients). `forward` runs with autograd on, inside whatever scope the caller holds (the U-Net's
// autocast); inputs whose gradients the caller hands out are leaves it made requires_grad, read after.
MseBackwardResult forwardBackwardMse(Module& model, const std::function<at::Tensor()>& forward, const Tensor& target,
                                     const std::vector<std::string>& names);

}  // namespace difftune
