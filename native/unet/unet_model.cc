#include "unet/unet_model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <optional>
#include <utility>

#include "modelio/module_io.h"
#include "nn/autocast.h"
#include "nn/lora.h"
#include "tensor/failure.h"
#include "tensor/shape_text.h"
#include "tensor/tensor_data.h"
#include "unet/unet.h"

namespace difftune {

namespace {

at::Tensor opt(const Tensor& t) { return t.defined() ? unwrap(t) : at::Tensor(); }

std::string dtypeText(const at::Tensor& t) {
  try {
    return dtypeName(fromScalarType(t.scalar_type()));
  } catch (const InvalidArgument&) {
    return c10::toString(t.scalar_type());
  }
}

std::string valueText(double v) { return std::isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity"; }

// The inputs JavaScript hands forward(), checked where libtorch would otherwise fail deep inside a
// reshape or the first convolution ("cannot reshape tensor of 0 elements", "Input type (long int) and
// bias type (float) should be the same"), or silently compute NaN from a NaN timestep. The trainer
// builds its own inputs and calls UNet::forward directly, so its steps pay for none of this.
void checkForwardInputs(const ForwardInputs& in) {
  if (in.sample.defined()) {
    const at::Tensor& sample = unwrap(in.sample);
    if (!sample.is_floating_point())
      throw InvalidArgument("Expected a floating-point tensor (float32, bfloat16 or float16) for sample but received a tensor of dtype " +
                            dtypeText(sample) + " and shape " + shapeText(sample));
    if (sample.dim() > 0 && sample.size(0) == 0)
      throw InvalidArgument("Expected at least one item (batch ≥ 1) in sample but received a batch of 0 (shape " + shapeText(sample) + ")");
  }
  if (in.context.defined() && !unwrap(in.context).is_floating_point())
    throw InvalidArgument("Expected a floating-point tensor for encoderHiddenStates but received a tensor of dtype " +
                          dtypeText(unwrap(in.context)));
  if (in.timestep.defined()) {
    const at::Tensor& t = unwrap(in.timestep);
    if (t.is_floating_point() && t.numel() > 0) {
      at::Tensor bad = t.detach().flatten().masked_select(at::isfinite(t.detach().flatten()).logical_not());
      if (bad.numel() > 0)
        throw InvalidArgument("Expected finite values for timestep but received " + valueText(bad[0].item<double>()) +
                              " (a timestep tensor of shape " + shapeText(t) + ")");
    }
  }
}

}  // namespace

UNetModel::UNetModel(const UNetConfig& config) : unet_(std::make_unique<UNet>(config)) {}
UNetModel::~UNetModel() = default;

std::vector<ParameterInfo> UNetModel::parameters() const { return parameterInfos(*unet_); }

// Strict like the frozen models, but a weight of a non-float dtype is converted rather than refused.
void UNetModel::loadStateDict(const NamedTensors& weights, const std::string& source) {
  loadModuleStateDict(*unet_, weights, source, {}, /*floatsOnly=*/false);
}

void UNetModel::checkStateDict(const std::vector<ParameterInfo>& weights, const std::string& source) const {
  checkModuleStateDict(*unet_, weights, source, {}, /*floatsOnly=*/false);
}

void UNetModel::copyWeights(const NamedTensors& weights, const std::string& source) { copyModuleWeights(*unet_, weights, source); }

NamedTensors UNetModel::stateDict() const { return moduleStateDict(*unet_); }

void UNetModel::to(const std::string& device, DType dtype) {
  std::string problem = checkDevice(device);
  if (!problem.empty()) throw InvalidArgument(problem);
  at::NoGradGuard noGrad;
  forEachSlot([&](const std::string& name, at::Tensor& slot) {
    bool grad = slot.requires_grad();
    // LoRA adapters stay float32 (they are what trains); base weights take the requested dtype.
    bool adapter = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 && name.find(".lora_") != std::string::npos;
    slot = slot.to(c10::Device(device), adapter ? at::kFloat : toScalarType(dtype)).detach().set_requires_grad(grad);
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
  checkForwardInputs(in);
  at::NoGradGuard noGrad;
  AutocastScope autocast(unet_->conv_in->weight.device().type(), autocastType(options_));
  return wrap(unet_->forward(unwrap(in.sample), unwrap(in.timestep), opt(in.context), opt(in.classLabels)));
}

BackwardResult UNetModel::forwardBackwardMse(const ForwardInputs& in, const Tensor& target, const std::vector<std::string>& names) {
  checkForwardInputs(in);
  AutocastScope autocast(unet_->conv_in->weight.device().type(), autocastType(options_));
  at::Tensor sample = unwrap(in.sample).detach().requires_grad_(true);
  at::Tensor context = in.context.defined() ? unwrap(in.context).detach().requires_grad_(true) : at::Tensor();
  MseBackwardResult mse = difftune::forwardBackwardMse(
      *unet_, [&] { return unet_->forward(sample, unwrap(in.timestep), context, opt(in.classLabels)); }, target, names);
  return {std::move(mse), wrap(sample.grad()), context.defined() ? wrap(context.grad()) : Tensor()};
}

std::string UNetModel::device() const { return unet_->conv_in->weight.device().str(); }
DType UNetModel::dtype() const { return fromScalarType(unet_->conv_in->weight.scalar_type()); }

void UNetModel::requireNoTrainer(const char* what) const {
  if (trainers_.load() > 0)
    throw InvalidArgument(std::string("cannot ") + what + " while a Trainer is attached to this U-Net: dispose the Trainer first");
}

void UNetModel::addLora(const LoraOptions& o) {
  requireNoTrainer("add LoRA adapters");
  addLoraAdapters(*unet_, o);
}

void UNetModel::setLora(const std::vector<LoraEntry>& entries, double dropout) {
  requireNoTrainer("replace LoRA adapters");
  setLoraAdapters(*unet_, entries, dropout);
}

std::vector<LoraEntry> UNetModel::loraEntries() const { return loraAdapterEntries(*unet_); }

void UNetModel::mergeLora() {
  requireNoTrainer("merge LoRA adapters");
  mergeLoraAdapters(*unet_);
}

void UNetModel::removeLora() {
  requireNoTrainer("remove LoRA adapters");
  removeLoraAdapters(*unet_);
}

void UNetModel::forEachSlot(const std::function<void(const std::string&, at::Tensor&)>& fn) {
  unet_->forEachParameter(fn);
  forEachLoraSlot(*unet_, fn);
}

}  // namespace difftune
