// A model that conditions the U-Net and may train with it in one step (the CLIP text encoder): the
// training step (train/trainer.h) runs its forward inside the step's autograd graph, under the step's
// autocast and LoRA dropout keys, and puts the slots it trains into the same optimizer. Models implement
// it in their own folder; this header names only what the trainer needs, so it includes no torch header.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace at {
class Tensor;
}  // namespace at

namespace difftune {

class TrainableConditioning {
 public:
  virtual ~TrainableConditioning() = default;
  // Every slot a trainer may train, by its state-dict name: base parameters, then the LoRA adapters'
  // "<module>.lora_A.weight" / ".lora_B.weight" (peft's names).
  virtual void forEachSlot(const std::function<void(const std::string&, at::Tensor&)>& fn) = 0;
  // Token ids [B, T] (any device, int64/int32) → the U-Net's encoder_hidden_states [B, T, D] on the model's
  // device; recorded by autograd when grad mode is on. clipSkip k > 0: the final LayerNorm of the hidden
  // state k layers before the last (diffusers' clip_skip), else the last hidden state.
  virtual at::Tensor condition(const at::Tensor& ids, int64_t clipSkip) = 0;
  virtual void setTraining(bool on) = 0;
  // While a trainer holds the addresses of its slots, changes that would replace them are refused.
  virtual void attachTrainer() = 0;
  virtual void detachTrainer() = 0;
};

}  // namespace difftune
