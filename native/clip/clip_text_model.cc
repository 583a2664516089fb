#include "clip/clip_text_model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "clip/clip_text.h"
#include "modelio/module_io.h"
#include "nn/layers.h"
#include "nn/lora.h"
#include "tensor/failure.h"
#include "tensor/shape_text.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {
// A buffer older transformers releases saved with the weights.
const char* const kIgnoredWeight = "text_model.embeddings.position_ids";
}  // namespace

ClipTextModel::ClipTextModel(const ClipTextConfig& config) : model_(std::make_unique<CLIPTextModule>(config)) {}
ClipTextModel::~ClipTextModel() = default;

std::vector<ParameterInfo> ClipTextModel::parameters() const { return parameterInfos(*model_); }

void ClipTextModel::loadStateDict(const NamedTensors& weights, const std::string& source) {
  loadModuleStateDict(*model_, weights, source, {kIgnoredWeight});
}

void ClipTextModel::checkStateDict(const std::vector<ParameterInfo>& weights, const std::string& source) const {
  checkModuleStateDict(*model_, weights, source, {kIgnoredWeight});
}

void ClipTextModel::copyWeights(const NamedTensors& weights, const std::string& source) {
  copyModuleWeights(*model_, weights, source, {kIgnoredWeight});
}

NamedTensors ClipTextModel::stateDict() const { return moduleStateDict(*model_); }

void ClipTextModel::to(const std::string& device, DType dtype) {
  moveModule(*model_, device, dtype);
  at::NoGradGuard noGrad;
  // Adapters follow the device but stay float32, as the U-Net's (they are what trains).
  forEachLoraSlot(*model_, [&](const std::string&, at::Tensor& slot) {
    bool grad = slot.requires_grad();
    slot = slot.to(c10::Device(device), at::kFloat).detach().set_requires_grad(grad);
  });
}

void ClipTextModel::initialize(uint64_t seed) { initializeModule(*model_, seed, device(), dtype()); }

at::Tensor ClipTextModel::checkedIds(const at::Tensor& ids) const {
  const ClipTextConfig& c = model_->text_model->config;
  if (ids.scalar_type() != at::kLong && ids.scalar_type() != at::kInt)
    throw InvalidArgument("Expected int64 token ids for inputIds but received a " + std::string(c10::toString(ids.scalar_type())) +
                          " tensor");
  if (ids.dim() != 2 || ids.size(0) < 1 || ids.size(1) < 1 || ids.size(1) > c.maxPositionEmbeddings)
    throw InvalidArgument("Expected inputIds of shape [batch, tokens] with 1 to " + std::to_string(c.maxPositionEmbeddings) +
                          " tokens (max_position_embeddings) but received " + shapeText(ids.sizes()));
  int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= c.vocabSize)
    throw InvalidArgument("Expected token ids in [0, " + std::to_string(c.vocabSize - 1) + "] (vocab_size " + std::to_string(c.vocabSize) +
                          ") but received the id " + std::to_string(lo < 0 ? lo : hi));
  return ids.to(model_->text_model->embeddings->token_embedding->weight.device(), at::kLong);
}

std::pair<at::Tensor, at::Tensor> ClipTextModel::inputs(const Tensor& inputIds, const Tensor& attentionMask) const {
  if (!inputIds.defined()) throw InvalidArgument("Expected a Tensor for inputIds");
  const at::Tensor& ids = unwrap(inputIds);
  at::Tensor checked = checkedIds(ids);
  const at::Tensor& weight = model_->text_model->embeddings->token_embedding->weight;
  at::Tensor mask;
  if (attentionMask.defined()) {
    mask = unwrap(attentionMask);
    if (mask.sizes() != ids.sizes())
      throw InvalidArgument("Expected an attentionMask of shape " + shapeText(ids.sizes()) + " (as inputIds) but received " +
                            shapeText(mask.sizes()));
    if (mask.is_complex()) throw InvalidArgument("Expected a real or bool attentionMask but received a complex tensor");
    mask = mask.to(weight.device());
  }
  return {checked, mask};
}

namespace {
// Eval mode for the scope (no LoRA dropout), the module's flag restored after: encode is inference even
// while the encoder trains (validation grids sample through it between steps).
class EvalScope {
 public:
  explicit EvalScope(Module& m) : module_(m), was_(m.training()) {
    if (was_) module_.setTraining(false);
  }
  ~EvalScope() {
    if (was_) module_.setTraining(true);
  }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  Module& module_;
  bool was_;
};

at::Tensor promptEmbeds(CLIPTextTransformer& t, const ClipTextOutputs& r, int64_t clipSkip) {
  // hidden_states[-(k + 1)] through the final LayerNorm (diffusers' clip_skip); k = 0 is last_hidden_state.
  return clipSkip == 0 ? r.lastHiddenState : t.final_layer_norm->forward(r.hiddenStates[r.hiddenStates.size() - 1 - clipSkip]);
}

void checkClipSkip(int64_t clipSkip, int64_t layers) {
  if (clipSkip < 0 || clipSkip > layers)
    throw InvalidArgument("Expected clipSkip in [0, " + std::to_string(layers) + "] (num_hidden_layers) but received " +
                          std::to_string(clipSkip));
}
}  // namespace

TextEncoderOutput ClipTextModel::encode(const Tensor& inputIds, const Tensor& attentionMask, const TextEncodeOptions& o) const {
  at::NoGradGuard noGrad;
  EvalScope eval(*model_);
  checkClipSkip(o.clipSkip, model_->text_model->config.numHiddenLayers);
  auto [ids, mask] = inputs(inputIds, attentionMask);
  ClipTextOutputs r = model_->text_model->forward(ids, mask);
  TextEncoderOutput out;
  out.lastHiddenState = wrap(r.lastHiddenState);
  out.pooledOutput = wrap(r.pooled);
  out.promptEmbeds = wrap(promptEmbeds(*model_->text_model, r, o.clipSkip));
  if (o.outputHiddenStates)
    for (auto& h : r.hiddenStates) out.hiddenStates.push_back(wrap(h));
  return out;
}

TextEncoderBackwardResult ClipTextModel::forwardBackwardMse(const Tensor& inputIds, const Tensor& attentionMask, const Tensor& target,
                                                            const std::vector<std::string>& names) {
  std::pair<at::Tensor, at::Tensor> in = inputs(inputIds, attentionMask);  // not a structured binding: C++17 lambdas cannot capture one
  return difftune::forwardBackwardMse(
      *model_, [&] { return model_->text_model->forward(in.first, in.second).lastHiddenState; }, target, names);
}

void ClipTextModel::requireNoTrainer(const char* what) const {
  if (trainers_.load() > 0)
    throw InvalidArgument(std::string("cannot ") + what + " while a Trainer is attached to this text encoder: dispose the Trainer first");
}

void ClipTextModel::addLora(const LoraOptions& options) {
  requireNoTrainer("add LoRA adapters");
  addLoraAdapters(*model_, options);
}

void ClipTextModel::setLora(const std::vector<LoraEntry>& entries, double dropout) {
  requireNoTrainer("replace LoRA adapters");
  setLoraAdapters(*model_, entries, dropout);
}

std::vector<LoraEntry> ClipTextModel::loraEntries() const { return loraAdapterEntries(*model_); }

void ClipTextModel::mergeLora() {
  requireNoTrainer("merge LoRA adapters");
  mergeLoraAdapters(*model_);
}

void ClipTextModel::removeLora() {
  requireNoTrainer("remove LoRA adapters");
  removeLoraAdapters(*model_);
}

int64_t ClipTextModel::appendTokenEmbeddings(const Tensor& rowsIn) {
  requireNoTrainer("add token embeddings");
  if (!rowsIn.defined()) throw InvalidArgument("Expected a Tensor for rows");
  const at::Tensor& rows = unwrap(rowsIn);
  Embedding& table = *model_->text_model->embeddings->token_embedding;
  if (rows.dim() != 2 || rows.size(0) < 1 || rows.size(1) != table.dim)
    throw InvalidArgument("Expected rows of shape [n, " + std::to_string(table.dim) + "] (n >= 1, hidden_size " +
                          std::to_string(table.dim) + ") but received " + shapeText(rows.sizes()));
  if (!rows.is_floating_point())
    throw InvalidArgument("Expected floating-point rows but received a " + std::string(c10::toString(rows.scalar_type())) + " tensor");
  at::NoGradGuard noGrad;
  int64_t first = table.num;
  bool grad = table.weight.requires_grad();
  table.weight = at::cat({table.weight, rows.to(table.weight.device(), table.weight.scalar_type())}).detach().set_requires_grad(grad);
  table.num += rows.size(0);
  model_->text_model->config.vocabSize = table.num;
  return first;
}

void ClipTextModel::setGradientCheckpointing(bool on) { model_->text_model->gradientCheckpointing = on; }

void ClipTextModel::forEachSlot(const std::function<void(const std::string&, at::Tensor&)>& fn) {
  model_->forEachParameter(fn);
  forEachLoraSlot(*model_, fn);
}

at::Tensor ClipTextModel::condition(const at::Tensor& ids, int64_t clipSkip) {
  checkClipSkip(clipSkip, model_->text_model->config.numHiddenLayers);
  ClipTextOutputs r = model_->text_model->forward(checkedIds(ids), at::Tensor());
  return promptEmbeds(*model_->text_model, r, clipSkip);
}

void ClipTextModel::setTraining(bool on) { model_->setTraining(on); }

std::string ClipTextModel::device() const { return model_->text_model->embeddings->token_embedding->weight.device().str(); }
DType ClipTextModel::dtype() const { return fromScalarType(model_->text_model->embeddings->token_embedding->weight.scalar_type()); }

}  // namespace difftune
