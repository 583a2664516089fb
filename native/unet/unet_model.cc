#include "unet/unet_model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>

#include <map>
#include <optional>
#include <set>

#include "tensor/failure.h"
#include "tensor/tensor_data.h"
#include "unet/autocast.h"
#include "unet/unet.h"

namespace difftune {

namespace {

std::string shapeText(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

at::Tensor opt(const Tensor& t) { return t.defined() ? unwrap(t) : at::Tensor(); }

}  // namespace

UNetModel::UNetModel(const UNetConfig& config) : unet_(std::make_unique<UNet>(config)) {}
UNetModel::~UNetModel() = default;

std::vector<ParameterInfo> UNetModel::parameters() const {
  std::vector<ParameterInfo> out;
  for (const auto& [name, t] : unet_->namedParameters()) {
    auto sizes = t.sizes();
    out.push_back({name, {sizes.begin(), sizes.end()}, fromScalarType(t.scalar_type()), t.requires_grad()});
  }
  return out;
}

void UNetModel::loadStateDict(const NamedTensors& weights, const std::string& source) {
  std::map<std::string, const at::Tensor*> given;
  std::vector<std::string> duplicates;
  for (const auto& [name, t] : weights) {
    if (!given.emplace(name, &unwrap(t)).second) duplicates.push_back(name);
  }
  std::vector<std::string> missing, wrongShape;
  std::set<std::string> used;
  for (const auto& [name, param] : unet_->namedParameters()) {
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
      continue;
    }
    used.insert(name);
    if (it->second->sizes() != param.sizes())
      wrongShape.push_back(name + " (expected " + shapeText(param.sizes()) + ", found " + shapeText(it->second->sizes()) + ")");
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : given)
    if (!used.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !wrongShape.empty() || !duplicates.empty()) {
    std::string msg = source + " does not match the model's config:";
    auto list = [&msg](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      msg += std::string("\n  ") + what + " (" + std::to_string(names.size()) + "):";
      size_t shown = 0;
      for (const auto& n : names) {
        if (shown++ == 20) {
          msg += "\n    ... and " + std::to_string(names.size() - 20) + " more";
          break;
        }
        msg += "\n    " + n;
      }
    };
    list("missing weights", missing);
    list("unexpected weights", unexpected);
    list("wrongly shaped weights", wrongShape);
    list("duplicate weights", duplicates);
    throw InvalidArgument(msg);
  }
  at::NoGradGuard noGrad;
  unet_->forEachParameter([&](const std::string& name, at::Tensor& slot) { slot.copy_(*given.at(name)); });
}

NamedTensors UNetModel::stateDict() const {
  NamedTensors out;
  at::NoGradGuard noGrad;
  for (const auto& [name, t] : unet_->namedParameters()) out.emplace_back(name, wrap(t.detach().clone()));
  return out;
}

void UNetModel::to(const std::string& device, DType dtype) {
  std::string problem = checkDevice(device);
  if (!problem.empty()) throw InvalidArgument(problem);
  at::NoGradGuard noGrad;
  unet_->forEachParameter([&](const std::string&, at::Tensor& slot) {
    bool grad = slot.requires_grad();
    slot = slot.to(c10::Device(device), toScalarType(dtype)).detach().set_requires_grad(grad);
  });
}

void UNetModel::initialize(uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Initialise on the CPU in float32 (reproducible across devices), then move to where the model lives.
  std::string dev = device();
  DType dt = dtype();
  to("cpu", DType::Float32);
  resetParameters(*unet_, gen);
  to(dev, dt);
}

void UNetModel::setTraining(bool on) { unet_->setTraining(on); }

void UNetModel::setOptions(const UNetRuntimeOptions& options) {
  if (options.autocast && options.autocastDtype != DType::BFloat16 && options.autocastDtype != DType::Float16)
    throw InvalidArgument("Expected \"bfloat16\" or \"float16\" for autocast");
  if (options.channelsLast != unet_->channelsLast) {
    at::NoGradGuard noGrad;
    auto format = options.channelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    unet_->forEachParameter([format](const std::string&, at::Tensor& slot) {
      if (slot.dim() != 4) return;
      bool grad = slot.requires_grad();
      slot = slot.contiguous(format).detach().set_requires_grad(grad);
    });
  }
  unet_->channelsLast = options.channelsLast;
  unet_->gradientCheckpointing = options.gradientCheckpointing;
  options_ = options;
}

namespace {
std::optional<c10::ScalarType> autocastType(const UNetRuntimeOptions& o) {
  return o.autocast ? std::optional<c10::ScalarType>(toScalarType(o.autocastDtype)) : std::nullopt;
}
}  // namespace

Tensor UNetModel::forward(const ForwardInputs& in) const {
  at::NoGradGuard noGrad;
  AutocastScope autocast(unet_->conv_in->weight.device().type(), autocastType(options_));
  return wrap(unet_->forward(unwrap(in.sample), unwrap(in.timestep), opt(in.context), opt(in.classLabels)));
}

BackwardResult UNetModel::forwardBackwardMse(const ForwardInputs& in, const Tensor& target, const std::vector<std::string>& names) {
  at::AutoGradMode grad(true);
  AutocastScope autocast(unet_->conv_in->weight.device().type(), autocastType(options_));
  at::Tensor sample = unwrap(in.sample).detach().requires_grad_(true);
  at::Tensor context = in.context.defined() ? unwrap(in.context).detach().requires_grad_(true) : at::Tensor();
  at::Tensor out = unet_->forward(sample, unwrap(in.timestep), context, opt(in.classLabels));
  const at::Tensor& tgt = unwrap(target);
  if (tgt.sizes() != out.sizes())
    throw InvalidArgument("Expected a target of shape " + shapeText(out.sizes()) + " but received " + shapeText(tgt.sizes()));
  // The loss in float32 even under autocast: a bf16 mean over many elements loses the small errors.
  at::Tensor loss = at::mse_loss(out.to(at::kFloat), tgt.to(at::kFloat));
  unet_->forEachParameter([](const std::string&, at::Tensor& p) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  });
  loss.backward();
  BackwardResult r;
  r.output = wrap(out.detach());
  r.loss = wrap(loss.detach());
  r.gradSample = wrap(sample.grad());
  if (context.defined()) r.gradContext = wrap(context.grad());
  std::set<std::string> wanted(names.begin(), names.end());
  std::set<std::string> found;
  unet_->forEachParameter([&](const std::string& name, at::Tensor& p) {
    if (!wanted.empty() && !wanted.count(name)) return;
    found.insert(name);
    r.gradParams.emplace_back(name, wrap(p.grad().defined() ? p.grad() : at::zeros_like(p)));
  });
  // Gradients are handed out, never accumulated across calls.
  unet_->forEachParameter([](const std::string&, at::Tensor& p) { p.mutable_grad() = at::Tensor(); });
  for (const auto& n : wanted)
    if (!found.count(n)) throw InvalidArgument("gradient requested for \"" + n + "\", which is not a parameter of this model");
  return r;
}

std::string UNetModel::device() const { return unet_->conv_in->weight.device().str(); }
DType UNetModel::dtype() const { return fromScalarType(unet_->conv_in->weight.scalar_type()); }

}  // namespace difftune
