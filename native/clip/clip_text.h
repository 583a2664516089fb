// transformers' CLIPTextModel (models/clip/modeling_clip.py), eval mode: module names as the
// checkpoint's keys under "text_model.": embeddings, pre-LayerNorm encoder layers with causal
// self-attention, final_layer_norm, and the pooled output at the end-of-text token.
#pragma once

#include <memory>
#include <vector>

#include "clip/clip_config.h"
#include "nn/layers.h"

namespace difftune {

class CLIPAttention : public Module {
 public:
  CLIPAttention(int64_t dim, int64_t heads);
  // x [B, T, D]; mask: additive [B or 1, 1, T, T] → [B, T, D]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask) const;
  int64_t heads, headDim;
  double scale;
  std::shared_ptr<Linear> k_proj, v_proj, q_proj, out_proj;
};

class CLIPMLP : public Module {
 public:
  CLIPMLP(int64_t dim, int64_t intermediate, const std::string& act);
  at::Tensor forward(const at::Tensor& x) const;
  std::string act;
  std::shared_ptr<Linear> fc1, fc2;
};

class CLIPEncoderLayer : public Module {
 public:
  explicit CLIPEncoderLayer(const ClipTextConfig& c);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask) const;
  std::shared_ptr<CLIPAttention> self_attn;
  std::shared_ptr<LayerNorm> layer_norm1, layer_norm2;
  std::shared_ptr<CLIPMLP> mlp;
};

class CLIPEncoder : public Module {
 public:
  explicit CLIPEncoder(const ClipTextConfig& c);
  std::shared_ptr<ModuleList<CLIPEncoderLayer>> layers;
};

class CLIPTextEmbeddings : public Module {
 public:
  explicit CLIPTextEmbeddings(const ClipTextConfig& c);
  // ids [B, T] int64 (checked by the caller) → token + position embeddings [B, T, D]
  at::Tensor forward(const at::Tensor& ids) const;
  std::shared_ptr<Embedding> token_embedding, position_embedding;
};

struct ClipTextOutputs {
  at::Tensor lastHiddenState;            // [B, T, D]
  at::Tensor pooled;                     // [B, D]
  std::vector<at::Tensor> hiddenStates;  // embeddings, then each layer's output (before final_layer_norm)
};

class CLIPTextTransformer : public Module {
 public:
  explicit CLIPTextTransformer(const ClipTextConfig& c);
  // ids [B, T] int64 in [0, vocab); attentionMask [B, T] (1 keep, 0 padding) or undefined.
  ClipTextOutputs forward(const at::Tensor& ids, const at::Tensor& attentionMask) const;
  ClipTextConfig config;  // vocabSize grows with appended token embeddings
  // With grad mode on, each encoder layer recomputes its activations in backward (nn/checkpoint.h).
  bool gradientCheckpointing = false;
  std::shared_ptr<CLIPTextEmbeddings> embeddings;
  std::shared_ptr<CLIPEncoder> encoder;
  std::shared_ptr<LayerNorm> final_layer_norm;
};

// The root: its only child is "text_model", as in the checkpoints.
class CLIPTextModule : public Module {
 public:
  explicit CLIPTextModule(const ClipTextConfig& c);
  std::shared_ptr<CLIPTextTransformer> text_model;
};

}  // namespace difftune
