// A torch-free facade over the CLIP text encoder for the N-API glue. encode runs without autograd, in
// eval mode (no LoRA dropout), also while the encoder trains; training runs it through the trainer as a
// TrainableConditioning (nn/conditioning.h). Call every method on the compute thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "clip/clip_config.h"
#include "nn/conditioning.h"
#include "nn/model_types.h"

namespace at {
class Tensor;
}  // namespace at
namespace difftune {

class CLIPTextModule;

struct TextEncodeOptions {
  int64_t clipSkip = 0;  // promptEmbeds = final_layer_norm(hidden_states[-(clipSkip + 1)])
  bool outputHiddenStates = false;
};

struct TextEncoderOutput {
  Tensor lastHiddenState;            // [B, T, D]
  Tensor pooledOutput;               // [B, D]
  Tensor promptEmbeds;               // what a pipeline feeds the U-Net: lastHiddenState unless clipSkip > 0
  std::vector<Tensor> hiddenStates;  // num_hidden_layers + 1 entries when asked for
};

using TextEncoderBackwardResult = MseBackwardResult;

class ClipTextModel : public TrainableConditioning {
 public:
  explicit ClipTextModel(const ClipTextConfig& config);
  ~ClipTextModel() override;

  std::vector<ParameterInfo> parameters() const;
  // Strict; text_model.embeddings.position_ids (a buffer older transformers saved) is accepted and ignored.
  void loadStateDict(const NamedTensors& weights, const std::string& source);
  // loadStateDict in two halves, for weights streamed from a file one tensor at a time: the whole set's
  // check from names, shapes and dtypes, then copies of some tensors each (see checkModuleStateDict).
  void checkStateDict(const std::vector<ParameterInfo>& weights, const std::string& source) const;
  void copyWeights(const NamedTensors& weights, const std::string& source);
  NamedTensors stateDict() const;
  void to(const std::string& device, DType dtype);
  void initialize(uint64_t seed);

  // inputIds [B, T] int64/int32 ids in [0, vocab_size), T <= max_position_embeddings; attentionMask
  // [B, T] (1 keep, 0 padding) or undefined.
  TextEncoderOutput encode(const Tensor& inputIds, const Tensor& attentionMask, const TextEncodeOptions& options) const;
  // loss = mean((last_hidden_state − target)²); backward; gradients of `names` (all when empty).
  TextEncoderBackwardResult forwardBackwardMse(const Tensor& inputIds, const Tensor& attentionMask, const Tensor& target,
                                               const std::vector<std::string>& names);

  // LoRA adapters on the encoder's Linear layers (peft's targets: self_attn q/k/v/out_proj, mlp fc1/fc2),
  // as the U-Net's (nn/lora.h): encode applies them; their slots are "<module>.lora_A.weight" /
  // ".lora_B.weight", peft's state-dict names ("text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight").
  void addLora(const LoraOptions& options);
  void setLora(const std::vector<LoraEntry>& entries, double dropout);
  std::vector<LoraEntry> loraEntries() const;
  void mergeLora();
  void removeLora();

  // Appends rows [n, hidden_size] to the token embedding (vocab_size grows by n; new tokens, e.g. textual
  // inversion's); returns the first new id.
  int64_t appendTokenEmbeddings(const Tensor& rows);
  // Encoder layers recompute their activations in backward (training through the trainer only).
  void setGradientCheckpointing(bool on);

  // TrainableConditioning: what the trainer runs and trains.
  void forEachSlot(const std::function<void(const std::string&, at::Tensor&)>& fn) override;
  at::Tensor condition(const at::Tensor& ids, int64_t clipSkip) override;
  void setTraining(bool on) override;
  void attachTrainer() override { ++trainers_; }
  void detachTrainer() override { --trainers_; }

  std::string device() const;
  DType dtype() const;

 private:
  std::pair<at::Tensor, at::Tensor> inputs(const Tensor& inputIds, const Tensor& attentionMask) const;
  // The checked ids on the model's device, as int64.
  at::Tensor checkedIds(const at::Tensor& ids) const;
  void requireNoTrainer(const char* what) const;
  std::unique_ptr<CLIPTextModule> model_;
  std::atomic<int> trainers_{0};
};

}  // namespace difftune
