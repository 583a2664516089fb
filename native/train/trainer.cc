#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <map>
#include <optional>

#include "nn/autocast.h"
#include "nn/lora.h"
#include "tensor/failure.h"
#include "tensor/generator.h"
#include "tensor/shape_text.h"
#include "tensor/tensor_data.h"
#include "train/adamw.h"
#include "train/ema.h"
#include "unet/unet.h"

namespace difftune {

namespace {

// Independent random streams per (seed, step, sample, purpose): a sample's noise does not depend on
// which micro-batch or process computed it, nor on whether another option drew numbers before it.
// kDropout keys the sample's LoRA dropout masks (each layer derives its own from it).
enum Stream : uint64_t { kTimestep = 1, kNoise = 2, kOffset = 3, kPerturbation = 4, kDropout = 5 };

uint64_t sampleKey(uint64_t seed, int64_t step, int64_t index, Stream stream) { return sampleStreamKey(seed, step, index, stream); }

at::Generator sampleGenerator(uint64_t seed, int64_t step, int64_t index, Stream stream) {
  return at::make_generator<at::CPUGeneratorImpl>(sampleKey(seed, step, index, stream));
}

at::Tensor randnLike(at::IntArrayRef shape, at::Generator gen) { return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)); }

struct SampleNoise {
  at::Tensor timesteps, noise, offset, perturbation;  // CPU
};

}  // namespace

// A parameter of which only some rows train: the others' indices and values, restored after each update.
struct FrozenRows {
  at::Tensor* param;
  at::Tensor indices;  // int64, on the parameter's device
  at::Tensor values;   // the rows as they were when the trainer was made
};

struct Trainer::Impl {
  std::shared_ptr<UNetModel> model;
  std::shared_ptr<TrainableConditioning> conditioning;
  TrainerConfig config;
  at::Tensor alphasCumprod;  // float32, on the model's device
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<Ema> ema;
  std::vector<std::pair<std::string, at::Tensor*>> trainable;
  std::vector<FrozenRows> frozenRows;
  bool badStep = false;
  std::shared_ptr<GradientReducer> reducer;  // data-parallel: set by setGradientReducer
  double lossScale = 1;
  int64_t goodSteps = 0;

  UNet& unet() { return model->unet(); }

  void setTraining(bool on) {
    model->setTraining(on);
    if (conditioning) conditioning->setTraining(on);
  }

  // The U-Net's context comes from encoder hidden states or from token ids through the conditioning model.
  void checkConditioning(const Tensor& context, const Tensor& inputIds, int64_t batch) const {
    if (!inputIds.defined()) return;
    if (!conditioning) throw InvalidArgument("batch.inputIds needs a trainer made with a conditioning model (the text encoder)");
    if (context.defined()) throw InvalidArgument("give batch.encoderHiddenStates or batch.inputIds, not both");
    const at::Tensor& ids = unwrap(inputIds);
    if (ids.dim() != 2 || ids.size(0) != batch)
      throw InvalidArgument("Expected batch.inputIds of shape [" + std::to_string(batch) + ", tokens] (one row per sample) but received " +
                            shapeText(ids.sizes()));
  }
  at::Device device() { return unet().conv_in->weight.device(); }

  SampleNoise draw(const at::Tensor& pixels, const std::vector<int64_t>& indices, int64_t step, uint64_t seed,
                   const std::vector<int64_t>* fixedTimesteps) {
    int64_t b = pixels.size(0);
    int64_t tMax = config.timestepMax > 0 ? config.timestepMax : alphasCumprod.size(0);
    auto sampleShape = pixels.sizes().slice(1);
    std::vector<at::Tensor> ts, noise, offset, pert;
    for (int64_t i = 0; i < b; ++i) {
      int64_t g = indices[static_cast<size_t>(i)];
      if (fixedTimesteps) {
        ts.push_back(at::full({1}, (*fixedTimesteps)[static_cast<size_t>(i) % fixedTimesteps->size()], at::kLong));
      } else {
        ts.push_back(
            at::randint(config.timestepMin, tMax, {1}, sampleGenerator(seed, step, g, kTimestep), at::TensorOptions().dtype(at::kLong)));
      }
      noise.push_back(randnLike(sampleShape, sampleGenerator(seed, step, g, kNoise)));
      if (config.noiseOffset != 0 && !fixedTimesteps)
        offset.push_back(randnLike({pixels.size(1), 1, 1}, sampleGenerator(seed, step, g, kOffset)));
      if (config.inputPerturbation != 0 && !fixedTimesteps)
        pert.push_back(randnLike(sampleShape, sampleGenerator(seed, step, g, kPerturbation)));
    }
    SampleNoise out;
    out.timesteps = at::cat(ts);
    out.noise = at::stack(noise);
    if (!offset.empty()) out.offset = at::stack(offset);
    if (!pert.empty()) out.perturbation = at::stack(pert);
    return out;
  }

  // The per-sample loss (weighted by min-SNR where asked) of one micro-batch: [B].
  at::Tensor sampleLosses(const at::Tensor& pixelsIn, const at::Tensor& labels, const at::Tensor& contextIn, const at::Tensor& inputIds,
                          const std::vector<int64_t>& indices, int64_t step, uint64_t seed, const std::vector<int64_t>* fixedTimesteps) {
    at::Device dev = device();
    at::Tensor x0 = pixelsIn.to(dev, at::kFloat);
    SampleNoise r = draw(x0, indices, step, seed, fixedTimesteps);
    at::Tensor t = r.timesteps.to(dev);
    at::Tensor noise = r.noise.to(dev);
    if (r.offset.defined()) noise = noise + config.noiseOffset * r.offset.to(dev);
    // Input perturbation (Ning et al. 2023): the network sees noise + γ·ξ, the target stays the noise.
    at::Tensor inputNoise = r.perturbation.defined() ? noise + config.inputPerturbation * r.perturbation.to(dev) : noise;

    at::Tensor ac = alphasCumprod.index_select(0, t).view({-1, 1, 1, 1});
    at::Tensor sqrtAc = ac.sqrt(), sqrtOneMinus = (1 - ac).sqrt();
    at::Tensor noisy = sqrtAc * x0 + sqrtOneMinus * inputNoise;
    at::Tensor target;
    if (config.predictionType == "epsilon")
      target = noise;
    else if (config.predictionType == "v_prediction")
      target = sqrtAc * noise - sqrtOneMinus * x0;
    else
      target = x0;

    std::optional<c10::ScalarType> autocast;
    if (config.mixedPrecision == "bf16") autocast = at::kBFloat16;
    if (config.mixedPrecision == "fp16") autocast = at::kHalf;
    // Dropout masks from (seed, step, sample index) too; checkpointed blocks carry the keys into
    // their recomputation, which runs after this scope ends.
    auto dropoutKeys = std::make_shared<DropoutKeys>();
    for (int64_t g : indices) dropoutKeys->sampleKeys.push_back(sampleKey(seed, step, g, kDropout));
    at::Tensor out;
    {
      DropoutKeysScope keysScope(dropoutKeys);
      AutocastScope scope(dev.type(), autocast);
      // The conditioning model's forward is part of the step's graph: its trainable slots get gradients.
      at::Tensor context = inputIds.defined() ? conditioning->condition(inputIds, config.conditioningClipSkip) : contextIn;
      out = unet().forward(noisy, t, context.defined() ? context.to(dev) : context, labels.defined() ? labels.to(dev) : labels);
    }
    at::Tensor losses = (out.to(at::kFloat) - target).pow(2).flatten(1).mean(1);  // [B]
    if (config.minSnrGamma > 0 && !fixedTimesteps) {
      at::Tensor snr = (ac / (1 - ac)).flatten();
      at::Tensor w = at::clamp_max(snr, config.minSnrGamma);
      if (config.predictionType == "epsilon")
        w = w / snr;
      else if (config.predictionType == "v_prediction")
        w = w / (snr + 1);
      losses = losses * w;
    }
    return losses;
  }
};

Trainer::Trainer(std::shared_ptr<UNetModel> model, const TrainerConfig& config, std::shared_ptr<TrainableConditioning> conditioning)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.model = std::move(model);
  m.conditioning = std::move(conditioning);
  m.config = config;
  if (config.predictionType != "epsilon" && config.predictionType != "v_prediction" && config.predictionType != "sample")
    throw InvalidArgument("Expected \"epsilon\", \"v_prediction\" or \"sample\" for predictionType but received \"" +
                          config.predictionType + "\"");
  if (config.mixedPrecision != "no" && config.mixedPrecision != "bf16" && config.mixedPrecision != "fp16")
    throw InvalidArgument("Expected \"no\", \"bf16\" or \"fp16\" for mixedPrecision but received \"" + config.mixedPrecision + "\"");
  if (config.mixedPrecision == "fp16" && !m.device().is_cuda())
    throw InvalidArgument("fp16 mixed precision needs CUDA; on the CPU use \"bf16\"");
  if (!config.alphasCumprod.defined() || unwrap(config.alphasCumprod).dim() != 1)
    throw InvalidArgument("Expected a 1-d alphasCumprod tensor from the noise scheduler");
  m.alphasCumprod = unwrap(config.alphasCumprod).to(m.device(), at::kFloat);
  int64_t T = m.alphasCumprod.size(0);
  int64_t tMax = config.timestepMax > 0 ? config.timestepMax : T;
  if (config.timestepMin < 0 || tMax > T || config.timestepMin >= tMax)
    throw InvalidArgument("Expected 0 <= timestepMin < timestepMax <= " + std::to_string(T));

  std::map<std::string, const TrainableParam*> wanted;
  for (const auto& p : config.trainable) wanted[p.name] = &p;
  std::vector<AdamWParam> groups;
  std::vector<std::string> found;
  auto visit = [&](const std::string& name, at::Tensor& slot) {
    auto it = wanted.find(name);
    bool train = it != wanted.end();
    // Frozen parameters get no gradient at all: no memory for it, and bit-identical after training.
    slot = slot.detach().set_requires_grad(train);
    if (!train) return;
    found.push_back(name);
    m.trainable.emplace_back(name, &slot);
    AdamWParam p;
    p.name = name;
    p.param = &slot;
    p.lrMultiplier = it->second->lrMultiplier;
    p.weightDecay = it->second->weightDecay;
    groups.push_back(std::move(p));
    const std::vector<int64_t>& rows = it->second->rows;
    if (rows.empty()) return;
    int64_t n = slot.dim() > 0 ? slot.size(0) : 0;
    std::vector<bool> trains(static_cast<size_t>(n), false);
    for (int64_t r : rows) {
      if (r < 0 || r >= n)
        throw InvalidArgument("trainable rows of " + name + ": expected indices in [0, " + std::to_string(n - 1) + "] but received " +
                              std::to_string(r));
      trains[static_cast<size_t>(r)] = true;
    }
    std::vector<int64_t> frozen;
    for (int64_t r = 0; r < n; ++r)
      if (!trains[static_cast<size_t>(r)]) frozen.push_back(r);
    if (frozen.empty()) return;
    at::NoGradGuard noGrad;
    at::Tensor indices = at::tensor(frozen, at::kLong).to(slot.device());
    m.frozenRows.push_back(FrozenRows{&slot, indices, slot.index_select(0, indices).clone()});
  };
  m.model->forEachSlot(visit);
  if (m.conditioning)
    m.conditioning->forEachSlot([&](const std::string& name, at::Tensor& slot) { visit(config.conditioningPrefix + name, slot); });
  if (found.size() != wanted.size()) {
    std::string missing;
    for (const auto& [name, p] : wanted)
      if (std::find(found.begin(), found.end(), name) == found.end()) missing += (missing.empty() ? "" : ", ") + name;
    throw InvalidArgument("trainable parameters not in the model: " + missing);
  }
  if (groups.empty()) throw InvalidArgument("nothing to train: the trainable parameter list is empty");
  m.optimizer = std::make_unique<AdamW>(std::move(groups), AdamWHyper{config.beta1, config.beta2, config.eps, config.weightDecay});
  if (config.ema) {
    EmaOptions e;
    e.decay = config.emaDecay;
    e.minDecay = config.emaMinDecay;
    e.updateAfterStep = config.emaUpdateAfterStep;
    e.updateEvery = std::max<int64_t>(1, config.emaUpdateEvery);
    e.useWarmup = config.emaWarmup;
    e.invGamma = config.emaInvGamma;
    e.power = config.emaPower;
    e.onCpu = config.emaOnCpu;
    m.ema = std::make_unique<Ema>(m.trainable, e);
  }
  m.lossScale = config.mixedPrecision == "fp16" ? config.lossScale : 1.0;
  m.model->setTraining(true);
  m.model->attachTrainer();
  if (m.conditioning) {
    m.conditioning->setTraining(true);
    m.conditioning->attachTrainer();
  }
}

Trainer::~Trainer() {
  if (impl_ && impl_->model) impl_->model->detachTrainer();
  if (impl_ && impl_->conditioning) {
    impl_->conditioning->setTraining(false);
    impl_->conditioning->detachTrainer();
  }
}

MicroResult Trainer::accumulate(const MicroBatch& batch) {
  Impl& m = *impl_;
  const at::Tensor& pixels = unwrap(batch.pixels);
  if (pixels.dim() != 4) throw InvalidArgument("Expected pixels of shape [batch, channels, height, width]");
  if (static_cast<int64_t>(batch.sampleIndices.size()) != pixels.size(0))
    throw InvalidArgument("Expected one sample index per batch item (" + std::to_string(pixels.size(0)) + ") but received " +
                          std::to_string(batch.sampleIndices.size()));
  bool weighted = !batch.lossWeights.empty();
  if (weighted && static_cast<int64_t>(batch.lossWeights.size()) != pixels.size(0))
    throw InvalidArgument("Expected one loss weight per batch item (" + std::to_string(pixels.size(0)) + ") but received " +
                          std::to_string(batch.lossWeights.size()));
  // With weights the caller defines what totalSamples counts (e.g. instance samples only).
  if (!weighted && batch.totalSamples < pixels.size(0)) throw InvalidArgument("totalSamples must count every sample of the optimizer step");
  m.checkConditioning(batch.context, batch.inputIds, pixels.size(0));
  at::AutoGradMode grad(true);
  at::Tensor losses = m.sampleLosses(pixels, batch.classLabels.defined() ? unwrap(batch.classLabels) : at::Tensor(),
                                     batch.context.defined() ? unwrap(batch.context) : at::Tensor(),
                                     batch.inputIds.defined() ? unwrap(batch.inputIds) : at::Tensor(), batch.sampleIndices, batch.step,
                                     m.config.seed, nullptr);
  if (weighted) losses = losses * at::tensor(at::ArrayRef<double>(batch.lossWeights)).to(losses.device(), at::kFloat);
  at::Tensor sum = losses.sum();
  MicroResult r;
  r.lossSum = sum.item<double>();
  r.samples = pixels.size(0);
  r.finite = std::isfinite(r.lossSum);
  if (!r.finite) {
    m.badStep = true;  // the whole optimizer step is skipped; no backward through a NaN
    return r;
  }
  // Dividing by the optimizer step's sample count makes k micro-batches sum to the full batch's mean.
  double divisor = batch.lossDivisor > 0 ? batch.lossDivisor : static_cast<double>(batch.totalSamples);
  (sum * (m.lossScale / divisor)).backward();
  return r;
}

OptimizerStepResult Trainer::step(double lr) {
  Impl& m = *impl_;
  at::NoGradGuard noGrad;
  OptimizerStepResult r;
  std::vector<at::Tensor> grads;
  if (m.reducer) {
    // Every process hands over the same list, so a gradient this process never got (its loss was
    // not finite, or the parameter took no part) is zeros rather than missing.
    for (auto& [name, p] : m.trainable) {
      if (!p->grad().defined()) p->mutable_grad() = at::zeros_like(*p);
      grads.push_back(p->grad());
    }
    m.badStep = m.reducer->reduceGradients(grads, m.badStep);
  } else {
    for (auto& [name, p] : m.trainable)
      if (p->grad().defined()) grads.push_back(p->grad());
  }
  // Rows that do not train take no part in the norm, the clipping or the moments.
  for (auto& f : m.frozenRows)
    if (f.param->grad().defined()) f.param->mutable_grad().index_fill_(0, f.indices, 0);
  if (m.lossScale != 1.0)
    for (auto& g : grads) g.mul_(1.0 / m.lossScale);
  // A bad step's gradients are dropped below: no clipping for them.
  double norm = clipGradNorm(grads, m.badStep ? 0 : m.config.maxGradNorm);
  r.gradNorm = norm;
  bool finite = std::isfinite(norm) && !m.badStep;
  if (finite) {
    m.optimizer->step(lr);
    for (auto& f : m.frozenRows) f.param->index_copy_(0, f.indices, f.values);
    if (m.ema) {
      m.ema->update(m.optimizer->steps());
      r.emaDecay = m.ema->lastDecay();
    }
    if (m.config.mixedPrecision == "fp16" && ++m.goodSteps >= static_cast<int64_t>(m.config.lossScaleGrowthInterval)) {
      m.lossScale *= 2;
      m.goodSteps = 0;
    }
  } else {
    r.skipped = true;
    if (m.config.mixedPrecision == "fp16") {
      m.lossScale = std::max(1.0, m.lossScale / 2);
      m.goodSteps = 0;
    }
  }
  for (auto& [name, p] : m.trainable) p->mutable_grad() = at::Tensor();
  m.badStep = false;
  r.optimizerSteps = m.optimizer->steps();
  r.lossScale = m.lossScale;
  return r;
}

double Trainer::validationLoss(const Tensor& pixels, const Tensor& classLabels, const Tensor& context, const Tensor& inputIds,
                               const std::vector<int64_t>& sampleIndices, uint64_t seed, const std::vector<int64_t>& timesteps) {
  Impl& m = *impl_;
  if (timesteps.empty()) throw InvalidArgument("Expected at least one validation timestep");
  if (static_cast<int64_t>(sampleIndices.size()) != unwrap(pixels).size(0))
    throw InvalidArgument("Expected one sample index per validation item");
  m.checkConditioning(context, inputIds, unwrap(pixels).size(0));
  at::NoGradGuard noGrad;
  m.setTraining(false);
  at::Tensor losses;
  try {
    losses = m.sampleLosses(unwrap(pixels), classLabels.defined() ? unwrap(classLabels) : at::Tensor(),
                            context.defined() ? unwrap(context) : at::Tensor(), inputIds.defined() ? unwrap(inputIds) : at::Tensor(),
                            sampleIndices, 0, seed, &timesteps);
  } catch (...) {
    m.setTraining(true);
    throw;
  }
  m.setTraining(true);
  return losses.mean().item<double>();
}

NamedTensors Trainer::optimizerState() const {
  NamedTensors out;
  at::NoGradGuard noGrad;
  for (const auto& p : impl_->optimizer->params()) {
    if (!p.expAvg.defined()) continue;
    // Views, not copies: a checkpoint streams them to disk between steps, and copies would add the
    // whole optimizer state to the peak (6.9 GB for the SD 1.5 U-Net).
    out.emplace_back("exp_avg." + p.name, wrap(p.expAvg.detach()));
    out.emplace_back("exp_avg_sq." + p.name, wrap(p.expAvgSq.detach()));
  }
  return out;
}

void Trainer::loadOptimizerState(const NamedTensors& state, int64_t optimizerSteps) {
  std::map<std::string, const at::Tensor*> byName;
  for (const auto& [name, t] : state) byName[name] = &unwrap(t);
  at::NoGradGuard noGrad;
  for (auto& p : impl_->optimizer->params()) {
    auto a = byName.find("exp_avg." + p.name), b = byName.find("exp_avg_sq." + p.name);
    if (a == byName.end() || b == byName.end()) {
      if (optimizerSteps > 0) throw InvalidArgument("optimizer state has no moments for " + p.name);
      continue;
    }
    if (a->second->sizes() != p.param->sizes() || b->second->sizes() != p.param->sizes())
      throw InvalidArgument("optimizer state for " + p.name + " has the wrong shape");
    p.expAvg = a->second->to(p.param->device(), at::kFloat).clone();
    p.expAvgSq = b->second->to(p.param->device(), at::kFloat).clone();
  }
  impl_->optimizer->setSteps(optimizerSteps);
}

NamedTensors Trainer::emaWeights() const {
  NamedTensors out;
  if (!impl_->ema) return out;
  for (auto& [name, t] : impl_->ema->shadow()) out.emplace_back(name, wrap(t.clone()));
  return out;
}

void Trainer::loadEmaWeights(const NamedTensors& weights, int64_t updates) {
  if (!impl_->ema) throw InvalidArgument("this trainer has no EMA to load weights into");
  std::map<std::string, const at::Tensor*> byName;
  for (const auto& [name, t] : weights) byName[name] = &unwrap(t);
  at::NoGradGuard noGrad;
  for (auto& [name, s] : impl_->ema->shadow()) {
    auto it = byName.find(name);
    if (it == byName.end()) throw InvalidArgument("EMA weights have no tensor for " + name);
    if (it->second->sizes() != s.sizes()) throw InvalidArgument("EMA weight " + name + " has the wrong shape");
    s.copy_(*it->second);
  }
  impl_->ema->setUpdates(updates);
}

void Trainer::setGradientReducer(std::shared_ptr<GradientReducer> reducer) {
  Impl& m = *impl_;
  if (reducer) {
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> weights;
    for (auto& [name, p] : m.trainable) weights.push_back(*p);
    if (m.ema)
      for (auto& [name, s] : m.ema->shadow()) weights.push_back(s);
    reducer->broadcastFromRoot(weights);
  }
  m.reducer = std::move(reducer);
}

int64_t Trainer::optimizerSteps() const { return impl_->optimizer->steps(); }
int64_t Trainer::emaUpdates() const { return impl_->ema ? impl_->ema->updates() : 0; }
double Trainer::lossScale() const { return impl_->lossScale; }
void Trainer::setLossScale(double scale) { impl_->lossScale = scale; }

}  // namespace difftune
