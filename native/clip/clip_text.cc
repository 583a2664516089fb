#include "clip/clip_text.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <limits>

#include "nn/checkpoint.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

// torch.finfo(dtype).min: what transformers fills masked scores with (not -inf).
double lowest(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return std::numeric_limits<double>::lowest();
    case at::kHalf: return -65504.0;
    case at::kBFloat16: return -3.3895313892515355e38;
    default: return std::numeric_limits<float>::lowest();
  }
}

at::Tensor activation(const std::string& act, const at::Tensor& x) {
  if (act == "quick_gelu") return x * at::sigmoid(1.702 * x);
  if (act == "gelu") return at::gelu(x);
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  if (act == "relu") return at::relu(x);
  return at::silu(x);  // "silu" / "swish" (checked at construction)
}

}  // namespace

CLIPAttention::CLIPAttention(int64_t dim, int64_t heads) : heads(heads), headDim(dim / heads) {
  if (heads <= 0 || dim % heads != 0)
    throw InvalidArgument("num_attention_heads " + std::to_string(heads) + " does not divide hidden_size " + std::to_string(dim));
  scale = 1.0 / std::sqrt(static_cast<double>(headDim));
  k_proj = registerModule("k_proj", std::make_shared<Linear>(dim, dim));
  v_proj = registerModule("v_proj", std::make_shared<Linear>(dim, dim));
  q_proj = registerModule("q_proj", std::make_shared<Linear>(dim, dim));
  out_proj = registerModule("out_proj", std::make_shared<Linear>(dim, dim));
}

at::Tensor CLIPAttention::forward(const at::Tensor& x, const at::Tensor& mask) const {
  int64_t b = x.size(0), t = x.size(1);
  auto split = [&](const at::Tensor& y) { return y.view({b, t, heads, headDim}).transpose(1, 2); };  // [B, H, T, d]
  at::Tensor q = split(q_proj->forward(x) * scale);
  at::Tensor k = split(k_proj->forward(x));
  at::Tensor v = split(v_proj->forward(x));
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) + mask;  // [B, H, T, T]
  at::Tensor out = at::matmul(at::softmax(scores, -1), v);        // [B, H, T, d]
  return out_proj->forward(out.transpose(1, 2).reshape({b, t, heads * headDim}));
}

CLIPMLP::CLIPMLP(int64_t dim, int64_t intermediate, const std::string& act) : act(act) {
  static const char* known[] = {"quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish"};
  bool ok = false;
  for (const char* k : known) ok = ok || act == k;
  if (!ok)
    throw InvalidArgument(
        "Expected one of \"quick_gelu\", \"gelu\", \"gelu_new\", \"gelu_pytorch_tanh\", \"relu\", \"silu\" for hidden_act but received \"" +
        act + "\"");
  fc1 = registerModule("fc1", std::make_shared<Linear>(dim, intermediate));
  fc2 = registerModule("fc2", std::make_shared<Linear>(intermediate, dim));
}

at::Tensor CLIPMLP::forward(const at::Tensor& x) const { return fc2->forward(activation(act, fc1->forward(x))); }

CLIPEncoderLayer::CLIPEncoderLayer(const ClipTextConfig& c) {
  self_attn = registerModule("self_attn", std::make_shared<CLIPAttention>(c.hiddenSize, c.numAttentionHeads));
  layer_norm1 = registerModule("layer_norm1", std::make_shared<LayerNorm>(c.hiddenSize, c.layerNormEps));
  mlp = registerModule("mlp", std::make_shared<CLIPMLP>(c.hiddenSize, c.intermediateSize, c.hiddenAct));
  layer_norm2 = registerModule("layer_norm2", std::make_shared<LayerNorm>(c.hiddenSize, c.layerNormEps));
}

at::Tensor CLIPEncoderLayer::forward(const at::Tensor& xIn, const at::Tensor& mask) const {
  at::Tensor x = xIn + self_attn->forward(layer_norm1->forward(xIn), mask);
  return x + mlp->forward(layer_norm2->forward(x));
}

CLIPEncoder::CLIPEncoder(const ClipTextConfig& c) {
  layers = registerModule("layers", std::make_shared<ModuleList<CLIPEncoderLayer>>());
  for (int64_t i = 0; i < c.numHiddenLayers; ++i) layers->push(std::make_shared<CLIPEncoderLayer>(c));
}

CLIPTextEmbeddings::CLIPTextEmbeddings(const ClipTextConfig& c) {
  token_embedding = registerModule("token_embedding", std::make_shared<Embedding>(c.vocabSize, c.hiddenSize));
  position_embedding = registerModule("position_embedding", std::make_shared<Embedding>(c.maxPositionEmbeddings, c.hiddenSize));
}

at::Tensor CLIPTextEmbeddings::forward(const at::Tensor& ids) const {
  const at::Tensor& tokens = token_embedding->weight;
  at::Tensor positions = at::arange(ids.size(1), ids.options().dtype(at::kLong));  // the first T positions
  return at::embedding(tokens, ids) + at::embedding(position_embedding->weight, positions).unsqueeze(0);
}

CLIPTextTransformer::CLIPTextTransformer(const ClipTextConfig& c) : config(c) {
  embeddings = registerModule("embeddings", std::make_shared<CLIPTextEmbeddings>(c));
  encoder = registerModule("encoder", std::make_shared<CLIPEncoder>(c));
  final_layer_norm = registerModule("final_layer_norm", std::make_shared<LayerNorm>(c.hiddenSize, c.layerNormEps));
}

ClipTextOutputs CLIPTextTransformer::forward(const at::Tensor& ids, const at::Tensor& attentionMask) const {
  int64_t b = ids.size(0), t = ids.size(1);
  at::Tensor x = embeddings->forward(ids);  // [B, T, D]
  at::ScalarType dtype = x.scalar_type();
  double minValue = lowest(dtype);
  // Causal mask, always: position i sees positions <= i. [1, 1, T, T]
  at::Tensor mask = at::full({t, t}, minValue, x.options()).triu(1).view({1, 1, t, t});
  if (attentionMask.defined()) {
    // Padded keys (mask 0) are masked in addition: [B, 1, 1, T] broadcast over queries.
    at::Tensor inverted = 1.0 - attentionMask.to(x.device(), dtype).view({b, 1, 1, t}).expand({b, 1, t, t});
    mask = mask + inverted.masked_fill(inverted.to(at::kBool), minValue);
  }
  ClipTextOutputs out;
  out.hiddenStates.push_back(x);
  bool recompute = gradientCheckpointing && at::GradMode::is_enabled();
  for (auto& layer : *encoder->layers) {
    if (recompute) {
      CLIPEncoderLayer* l = layer.get();
      x = checkpoint([l](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{l->forward(in[0], in[1])}; }, {x, mask},
                     *l)[0];
    } else {
      x = layer->forward(x, mask);
    }
    out.hiddenStates.push_back(x);
  }
  out.lastHiddenState = final_layer_norm->forward(x);
  // The end-of-text position: the largest id with the legacy eos_token_id 2 (CLIP's <|endoftext|> is the
  // highest id), otherwise the first position holding eos_token_id.
  at::Tensor intIds = ids.to(at::kInt);
  at::Tensor eos = config.eosTokenId == 2 ? intIds.argmax(-1) : intIds.eq(config.eosTokenId).to(at::kInt).argmax(-1);  // [B]
  at::Tensor rows = at::arange(b, eos.options().dtype(at::kLong)) * t + eos.to(at::kLong);
  out.pooled = out.lastHiddenState.reshape({b * t, -1}).index_select(0, rows);  // [B, D]
  return out;
}

CLIPTextModule::CLIPTextModule(const ClipTextConfig& c) {
  text_model = registerModule("text_model", std::make_shared<CLIPTextTransformer>(c));
}

}  // namespace difftune
