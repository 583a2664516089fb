#include "train/vae_trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <utility>

#include "modelio/module_io.h"
#include "tensor/failure.h"
#include "tensor/generator.h"
#include "tensor/shape_text.h"
#include "tensor/tensor_data.h"
#include "train/adamw.h"
#include "vae/autoencoder_kl.h"

namespace difftune {

namespace {

// Stream numbers apart from the U-Net trainer's (train/trainer.cc), so that one seed used for both
// draws unrelated numbers.
enum VaeStream : uint64_t { kPosterior = 16, kEvaluation = 17 };

// ε of each image's posterior draw: N(0, 1) drawn in float32 on the CPU from the image's own stream
// (the same numbers on every device and in any batch), then on the latents' device and dtype.
at::Tensor posteriorNoise(const at::Tensor& mean, const std::vector<int64_t>& indices, uint64_t seed, int64_t step, VaeStream stream) {
  std::vector<at::Tensor> noise;
  noise.reserve(indices.size());
  for (int64_t index : indices)
    noise.push_back(at::randn(mean.sizes().slice(1), at::make_generator<at::CPUGeneratorImpl>(sampleStreamKey(seed, step, index, stream)),
                              at::TensorOptions().dtype(at::kFloat)));
  return at::stack(noise).to(mean.device(), mean.scalar_type());
}

// Losses in float32 even for a bf16/fp16 model (small errors vanish in a low-precision sum), in float64
// for a float64 one (finite-difference checks).
at::ScalarType lossType(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// rec(x̂, x) summed over each image's elements: [B].
at::Tensor reconstructionPerImage(const at::Tensor& output, const at::Tensor& target, bool l1) {
  at::Tensor d = output - target;
  return (l1 ? d.abs() : d.pow(2)).flatten(1).sum(1);
}

// DiagonalGaussianDistribution.kl() against N(0, I): ½ Σ (mean² + var − 1 − logvar) over each image's latents: [B].
at::Tensor klPerImage(const at::Tensor& mean, const at::Tensor& logvar) {
  return (0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)).flatten(1).sum(1);
}

}  // namespace

struct VaeTrainer::Impl {
  std::shared_ptr<VaeModel> model;
  VaeTrainerConfig config;
  bool l1 = false;
  std::unique_ptr<AdamW> optimizer;
  std::vector<at::Tensor*> slots;

  AutoencoderKL& vae() { return model->autoencoder(); }

  // The batch's images as the model takes them, and in the loss's dtype as the reconstruction target
  // (the caller's values, not rounded to a bf16 model's).
  std::pair<at::Tensor, at::Tensor> inputs(const VaeBatch& b) {
    at::Tensor x = model->inputImages(b.images, "batch.images");
    if (static_cast<int64_t>(b.sampleIndices.size()) != x.size(0))
      throw InvalidArgument("Expected one sample index per image (" + std::to_string(x.size(0)) + ") in batch.sampleIndices but received " +
                            std::to_string(b.sampleIndices.size()));
    int64_t f = model->scaleFactor();
    if (x.size(2) % f != 0 || x.size(3) % f != 0)
      throw InvalidArgument("Expected batch.images with height and width multiples of the VAE's scale factor " + std::to_string(f) +
                            " (so that a reconstruction has the image's size) but received " + shapeText(x.sizes()));
    return {x, unwrap(b.images).to(x.device(), lossType(x))};
  }

  struct Terms {
    at::Tensor loss, reconstruction, kl;  // scalars
  };

  Terms terms(const VaeBatch& b) {
    auto [x, target] = inputs(b);
    auto [mean, logvar] = AutoencoderKL::splitMoments(vae().encodeMoments(x));
    at::Tensor eps = posteriorNoise(mean, b.sampleIndices, config.seed, b.step, kPosterior);
    at::Tensor output = vae().decode(mean + at::exp(0.5 * logvar) * eps);
    auto t = target.scalar_type();
    double batch = static_cast<double>(x.size(0));
    at::Tensor rec = reconstructionPerImage(output.to(t), target, l1).sum() / batch;
    at::Tensor kl = klPerImage(mean.to(t), logvar.to(t)).sum() / batch;
    return {rec + config.klWeight * kl, rec, kl};
  }

  static VaeLossParts parts(const Terms& t) {
    VaeLossParts p;
    p.loss = t.loss.item<double>();
    p.reconstruction = t.reconstruction.item<double>();
    p.kl = t.kl.item<double>();
    p.finite = std::isfinite(p.loss);
    return p;
  }

  void dropGradients() {
    for (at::Tensor* s : slots)
      if (s->grad().defined()) s->mutable_grad() = at::Tensor();
  }
};

VaeTrainer::VaeTrainer(std::shared_ptr<VaeModel> model, const VaeTrainerConfig& config) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (!model) throw InvalidArgument("Expected an AutoencoderKL for the VAE trainer");
  m.model = std::move(model);
  m.config = config;
  if (config.reconstructionLoss != "mse" && config.reconstructionLoss != "l1")
    throw InvalidArgument("Expected \"mse\" or \"l1\" for config.reconstructionLoss but received \"" + config.reconstructionLoss + "\"");
  if (!(config.klWeight >= 0) || !std::isfinite(config.klWeight))
    throw InvalidArgument("Expected a finite non-negative number for config.klWeight but received " + std::to_string(config.klWeight));
  m.l1 = config.reconstructionLoss == "l1";
  std::vector<AdamWParam> params;
  m.vae().forEachParameter([&](const std::string& name, at::Tensor& slot) {
    slot = slot.detach().set_requires_grad(true);
    m.slots.push_back(&slot);
    AdamWParam p;
    p.name = name;
    p.param = &slot;
    params.push_back(std::move(p));
  });
  m.optimizer = std::make_unique<AdamW>(std::move(params), AdamWHyper{config.beta1, config.beta2, config.eps, config.weightDecay});
}

VaeTrainer::~VaeTrainer() = default;

VaeStepResult VaeTrainer::step(const VaeBatch& batch, double lr) {
  Impl& m = *impl_;
  m.dropGradients();
  VaeStepResult r;
  {
    at::AutoGradMode grad(true);
    Impl::Terms t = m.terms(batch);
    r.loss = Impl::parts(t);
    if (r.loss.finite) t.loss.backward();  // no backward through a NaN
  }
  if (r.loss.finite) {
    std::vector<at::Tensor> grads;
    for (at::Tensor* s : m.slots)
      if (s->grad().defined()) grads.push_back(s->grad());
    r.gradNorm = clipGradNorm(grads, m.config.maxGradNorm);
  }
  r.skipped = !r.loss.finite || !std::isfinite(r.gradNorm);
  if (!r.skipped) m.optimizer->step(lr);
  m.dropGradients();
  r.optimizerSteps = m.optimizer->steps();
  return r;
}

VaeGradients VaeTrainer::gradients(const VaeBatch& batch) {
  Impl& m = *impl_;
  m.dropGradients();
  VaeGradients r;
  {
    at::AutoGradMode grad(true);
    Impl::Terms t = m.terms(batch);
    r.loss = Impl::parts(t);
    t.loss.backward();
  }
  r.gradParams = takeGradients(m.vae(), {});
  return r;
}

VaeEvaluation VaeTrainer::evaluate(const VaeBatch& batch) {
  Impl& m = *impl_;
  at::NoGradGuard noGrad;
  auto [x, target] = m.inputs(batch);
  auto [mean, logvar] = AutoencoderKL::splitMoments(m.vae().encodeMoments(x));
  auto t = target.scalar_type();
  at::Tensor output = m.vae().decode(mean).to(t);
  at::Tensor eps = posteriorNoise(mean, batch.sampleIndices, m.config.seed, batch.step, kEvaluation);
  at::Tensor z = (mean + at::exp(0.5 * logvar) * eps).to(at::kDouble);
  VaeEvaluation e;
  e.reconstructionSum = reconstructionPerImage(output, target, m.l1).sum().item<double>();
  e.klSum = klPerImage(mean.to(t), logvar.to(t)).sum().item<double>();
  e.latentSum = z.sum().item<double>();
  e.latentSquareSum = z.pow(2).sum().item<double>();
  e.images = x.size(0);
  e.pixelElements = target.numel();
  e.latentElements = z.numel();
  return e;
}

int64_t VaeTrainer::optimizerSteps() const { return impl_->optimizer->steps(); }

}  // namespace difftune
