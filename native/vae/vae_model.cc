#include "vae/vae_model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <functional>
#include <utility>
#include <vector>

#include "modelio/module_io.h"
#include "tensor/failure.h"
#include "tensor/shape_text.h"
#include "tensor/tensor_data.h"
#include "vae/autoencoder_kl.h"

namespace difftune {

namespace {

// A 4-D floating batch with `channels` channels and at least `minSize` rows and columns, moved to
// the model's device and dtype.
at::Tensor modelInput(const Tensor& t, const char* what, int64_t channels, int64_t minSize, const at::Tensor& weight) {
  if (!t.defined()) throw InvalidArgument(std::string("Expected a Tensor for ") + what);
  const at::Tensor& x = unwrap(t);
  if (x.dim() != 4 || x.size(1) != channels)
    throw InvalidArgument(std::string("Expected ") + what + " of shape [batch, " + std::to_string(channels) +
                          ", height, width] but received " + shapeText(x.sizes()));
  if (!at::isFloatingType(x.scalar_type()))
    throw InvalidArgument(std::string("Expected a floating-point tensor for ") + what + " but received " +
                          std::string(c10::toString(x.scalar_type())));
  if (x.size(0) < 1 || x.size(2) < minSize || x.size(3) < minSize)
    throw InvalidArgument(std::string("Expected ") + what + " with a batch of at least 1 and height and width of at least " +
                          std::to_string(minSize) + " but received " + shapeText(x.sizes()));
  return x.to(weight.device(), weight.scalar_type());
}

}  // namespace

VaeModel::VaeModel(const VaeConfig& config) : vae_(std::make_unique<AutoencoderKL>(config)) {}
VaeModel::~VaeModel() = default;

std::vector<ParameterInfo> VaeModel::parameters() const { return parameterInfos(*vae_); }

void VaeModel::loadStateDict(const NamedTensors& weights, const std::string& source) { loadModuleStateDict(*vae_, weights, source); }

void VaeModel::checkStateDict(const std::vector<ParameterInfo>& weights, const std::string& source) const {
  checkModuleStateDict(*vae_, weights, source);
}

void VaeModel::copyWeights(const NamedTensors& weights, const std::string& source) { copyModuleWeights(*vae_, weights, source); }

NamedTensors VaeModel::stateDict() const { return moduleStateDict(*vae_); }

void VaeModel::to(const std::string& device, DType dtype) { moveModule(*vae_, device, dtype); }

void VaeModel::initialize(uint64_t seed) { initializeModule(*vae_, seed, device(), dtype()); }

int64_t VaeModel::scaleFactor() const { return int64_t{1} << (vae_->config.blockOutChannels.size() - 1); }

namespace {

// diffusers' use_slicing: a batch of more than one goes through `one` an image at a time, joined again.
at::Tensor sliced(const at::Tensor& x, bool slicing, const std::function<at::Tensor(const at::Tensor&)>& one) {
  if (!slicing || x.size(0) <= 1) return one(x);
  std::vector<at::Tensor> parts;
  for (const auto& slice : x.split(1)) parts.push_back(one(slice));
  return at::cat(parts);
}

}  // namespace

VaeEncoding VaeModel::encode(const Tensor& images, const VaeTiling& tiling) const {
  at::NoGradGuard noGrad;
  const VaeConfig& c = vae_->config;
  at::Tensor x = modelInput(images, "images", c.inChannels, scaleFactor(), vae_->encoder->conv_in->weight);
  // _encode: tiled when the image is wider or taller than a tile.
  at::Tensor moments = sliced(x, tiling.slicing, [&](const at::Tensor& s) {
    bool tiled = tiling.tiling && (s.size(3) > tiling.tileSampleSize || s.size(2) > tiling.tileSampleSize);
    return tiled ? vae_->tiledEncodeMoments(s, tiling) : vae_->encodeMoments(s);
  });
  auto [mean, logvar] = AutoencoderKL::splitMoments(moments);
  at::Tensor std = at::exp(0.5 * logvar);
  return {wrap(mean.contiguous()), wrap(logvar.contiguous()), wrap(std)};
}

Tensor VaeModel::decode(const Tensor& latents, const VaeTiling& tiling) const {
  at::NoGradGuard noGrad;
  at::Tensor z = modelInput(latents, "latents", vae_->config.latentChannels, 1, vae_->decoder->conv_in->weight);
  // _decode: tiled when the latents are wider or taller than a tile.
  return wrap(sliced(z, tiling.slicing, [&](const at::Tensor& s) {
    bool tiled = tiling.tiling && (s.size(3) > tiling.tileLatentSize || s.size(2) > tiling.tileLatentSize);
    return tiled ? vae_->tiledDecode(s, tiling) : vae_->decode(s);
  }));
}

at::Tensor VaeModel::inputImages(const Tensor& images, const char* what) const {
  return modelInput(images, what, vae_->config.inChannels, scaleFactor(), vae_->encoder->conv_in->weight);
}

Tensor VaeModel::forward(const Tensor& images) const {
  at::NoGradGuard noGrad;
  at::Tensor x = modelInput(images, "images", vae_->config.inChannels, scaleFactor(), vae_->encoder->conv_in->weight);
  return wrap(vae_->decode(vae_->encode(x).first));
}

VaeBackwardResult VaeModel::decodeBackwardMse(const Tensor& latents, const Tensor& target, const std::vector<std::string>& names) {
  at::Tensor z =
      modelInput(latents, "latents", vae_->config.latentChannels, 1, vae_->decoder->conv_in->weight).detach().requires_grad_(true);
  MseBackwardResult mse = forwardBackwardMse(
      *vae_, [&] { return vae_->decode(z); }, target, names);
  return {std::move(mse), wrap(z.grad())};
}

std::string VaeModel::device() const { return vae_->encoder->conv_in->weight.device().str(); }
DType VaeModel::dtype() const { return fromScalarType(vae_->encoder->conv_in->weight.scalar_type()); }

}  // namespace difftune
