// LoRA adapters (Hu et al. 2021, PEFT's layout): a frozen layer W plus a low-rank update
// y = W·x + (alpha / rank)·B(A(dropout(x))). A is [rank, in] (for convolutions [rank, in, k, k] with the
// base layer's stride and padding), B is [out, rank] ([out, rank, 1, 1]). They live outside the module
// registry, so the model's named parameters stay exactly diffusers' base state dict.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "nn/model_types.h"

namespace difftune {

// Keys for reproducible dropout masks: one per batch item (the trainer derives it from seed, step and
// the sample's global index, so a sample's mask does not depend on its micro-batch or rank). A LoRA
// layer draws item i's mask from a generator seeded by (sampleKeys[i], the layer's key, how many times
// the layer ran under these keys). Gradient checkpointing snapshots them with the call counts and
// replays that snapshot when it recomputes a block, so the recomputation draws the same masks.
struct DropoutKeys {
  std::vector<uint64_t> sampleKeys;
  std::unordered_map<uint64_t, uint64_t> calls;  // layer key → calls so far
};

// Installs `keys` for LoRA dropout on the calling thread (all torch work of a forward runs on one
// thread) until the scope ends, restoring the previous ones; nullptr installs none. Without keys, LoRA
// dropout draws from libtorch's global generator (a plain forward in training mode).
class DropoutKeysScope {
 public:
  explicit DropoutKeysScope(std::shared_ptr<DropoutKeys> keys);
  ~DropoutKeysScope();
  DropoutKeysScope(const DropoutKeysScope&) = delete;
  DropoutKeysScope& operator=(const DropoutKeysScope&) = delete;
  static const std::shared_ptr<DropoutKeys>& current();

 private:
  std::shared_ptr<DropoutKeys> previous_;
};

// A layer's dropout key from its module path ("down_blocks.0.attentions.0...to_q"): stable across
// processes and platforms.
uint64_t loraLayerKey(const std::string& module);

struct LoraAdapter {
  int64_t rank = 4;
  double alpha = 4;
  double dropout = 0;
  uint64_t key = 0;  // loraLayerKey of the layer it adapts
  at::Tensor A, B;   // lora_A.weight, lora_B.weight
  // Conv2d targets: the base layer's geometry.
  bool conv = false;
  int64_t kernel = 1, stride = 1, padding = 0;

  double scale() const { return alpha / static_cast<double>(rank); }
  // The adapter's contribution for input x (what the base layer adds it to).
  at::Tensor delta(const at::Tensor& x, bool training) const;
  // scale·B·A as a weight of the base layer's shape (for merging).
  at::Tensor mergedWeight() const;
};

class Module;

// A model's adapters, by module path ("down_blocks.0...to_q", "text_model.encoder.layers.0.self_attn.q_proj"):
// what every model facade with adapters (the U-Net, the CLIP text encoder) does with them. Targets are
// the model's Linear and Conv2d layers; an unknown or other layer is an InvalidArgument naming it.

// Adds fresh adapters (A kaiming-uniform or gaussian from options.seed, B zero: a no-op until trained).
void addLoraAdapters(Module& root, const LoraOptions& options);
// Installs adapters with the given weights, replacing any on those layers; every entry is checked
// against its layer's shape before anything changes (all or nothing). alpha <= 0 means alpha = rank.
void setLoraAdapters(Module& root, const std::vector<LoraEntry>& entries, double dropout);
// (module, A, B, alpha) of every adapter, as copies, in module-path order.
std::vector<LoraEntry> loraAdapterEntries(Module& root);
// Folds every adapter into its base weight (W += alpha/rank·B·A, in W's dtype) and removes it.
void mergeLoraAdapters(Module& root);
void removeLoraAdapters(Module& root);
// Visits every adapter's "<module>.lora_A.weight" and ".lora_B.weight" slot (peft's state-dict names),
// in module-path order.
void forEachLoraSlot(Module& root, const std::function<void(const std::string&, at::Tensor&)>& fn);

}  // namespace difftune
