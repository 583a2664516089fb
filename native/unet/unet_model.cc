#include "unet/unet_model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>
#include <optional>
#include <utility>

#include "modelio/module_io.h"
#include "nn/autocast.h"
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

}  // namespace difftune

namespace difftune {

namespace {

struct LoraTarget {
  Linear* linear = nullptr;
  Conv2d* conv = nullptr;
  std::shared_ptr<LoraAdapter>& slot() { return linear ? linear->lora : conv->lora; }
};

std::map<std::string, LoraTarget> loraTargets(UNet& unet) {
  std::map<std::string, LoraTarget> out;
  unet.forEachNamedModule([&](const std::string& name, Module& m) {
    if (auto* l = dynamic_cast<Linear*>(&m))
      out[name].linear = l;
    else if (auto* c = dynamic_cast<Conv2d*>(&m))
      out[name].conv = c;
  });
  return out;
}

LoraTarget findTarget(std::map<std::string, LoraTarget>& targets, const std::string& module) {
  auto it = targets.find(module);
  if (it == targets.end()) throw InvalidArgument("LoRA target \"" + module + "\" is not a Linear or Conv2d layer of this model");
  return it->second;
}

}  // namespace

void UNetModel::requireNoTrainer(const char* what) const {
  if (trainers_.load() > 0)
    throw InvalidArgument(std::string("cannot ") + what + " while a Trainer is attached to this U-Net: dispose the Trainer first");
}

void UNetModel::addLora(const LoraOptions& o) {
  requireNoTrainer("add LoRA adapters");
  if (o.rank < 1) throw InvalidArgument("Expected a positive LoRA rank but received " + std::to_string(o.rank));
  if (o.targets.empty()) throw InvalidArgument("LoRA needs at least one target layer");
  if (o.init != "kaiming" && o.init != "gaussian")
    throw InvalidArgument("Expected \"kaiming\" or \"gaussian\" for the LoRA init but received \"" + o.init + "\"");
  auto targets = loraTargets(*unet_);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  at::NoGradGuard noGrad;
  for (const auto& module : o.targets) {
    LoraTarget t = findTarget(targets, module);
    if (t.slot()) throw InvalidArgument("layer \"" + module + "\" already has a LoRA adapter");
    auto a = std::make_shared<LoraAdapter>();
    a->rank = o.rank;
    a->alpha = o.alpha;
    a->dropout = o.dropout;
    a->key = loraLayerKey(module);
    const at::Tensor& w = t.linear ? t.linear->weight : t.conv->weight;
    int64_t in = w.size(1), out = w.size(0);
    int64_t k = t.conv ? t.conv->kernel : 1;
    at::Tensor A = t.conv ? at::empty({o.rank, in, k, k}) : at::empty({o.rank, in});
    if (o.init == "kaiming") {
      double bound = 1.0 / std::sqrt(static_cast<double>(in * k * k));  // kaiming_uniform(a=√5), as PEFT
      A.uniform_(-bound, bound, gen);
    } else {
      A.normal_(0.0, 1.0 / static_cast<double>(o.rank), gen);
    }
    at::Tensor B = t.conv ? at::zeros({out, o.rank, 1, 1}) : at::zeros({out, o.rank});
    a->A = A.to(w.device(), at::kFloat).set_requires_grad(true);
    a->B = B.to(w.device(), at::kFloat).set_requires_grad(true);
    if (t.conv) {
      a->conv = true;
      a->kernel = k;
      a->stride = t.conv->stride;
      a->padding = t.conv->padding;
    }
    t.slot() = a;
  }
}

void UNetModel::setLora(const std::vector<LoraEntry>& entries, double dropout) {
  requireNoTrainer("replace LoRA adapters");
  auto targets = loraTargets(*unet_);
  std::vector<std::pair<LoraTarget, std::shared_ptr<LoraAdapter>>> planned;
  for (const auto& e : entries) {
    LoraTarget t = findTarget(targets, e.module);
    const at::Tensor& w = t.linear ? t.linear->weight : t.conv->weight;
    const at::Tensor& A = unwrap(e.A);
    const at::Tensor& B = unwrap(e.B);
    int64_t rank = A.size(0);
    bool conv = t.conv != nullptr;
    int64_t k = conv ? t.conv->kernel : 1;
    bool ok = conv ? (A.dim() == 4 && A.size(1) == w.size(1) && A.size(2) == k && A.size(3) == k && B.dim() == 4 &&
                      B.size(0) == w.size(0) && B.size(1) == rank && B.size(2) == 1 && B.size(3) == 1)
                   : (A.dim() == 2 && A.size(1) == w.size(1) && B.dim() == 2 && B.size(0) == w.size(0) && B.size(1) == rank);
    if (!ok)
      throw InvalidArgument("LoRA weights for \"" + e.module + "\" do not fit the layer: base weight " + shapeText(w.sizes()) +
                            ", lora_A " + shapeText(A.sizes()) + ", lora_B " + shapeText(B.sizes()));
    auto a = std::make_shared<LoraAdapter>();
    a->rank = rank;
    a->alpha = e.alpha > 0 ? e.alpha : static_cast<double>(rank);
    a->dropout = dropout;
    a->key = loraLayerKey(e.module);
    a->A = A.to(w.device(), at::kFloat).detach().clone().set_requires_grad(true);
    a->B = B.to(w.device(), at::kFloat).detach().clone().set_requires_grad(true);
    if (conv) {
      a->conv = true;
      a->kernel = k;
      a->stride = t.conv->stride;
      a->padding = t.conv->padding;
    }
    planned.emplace_back(t, a);
  }
  for (auto& [t, a] : planned) t.slot() = a;  // all or nothing
}

std::vector<LoraEntry> UNetModel::loraEntries() const {
  std::vector<LoraEntry> out;
  at::NoGradGuard noGrad;
  for (auto& [name, t] : loraTargets(*unet_)) {
    LoraTarget target = t;
    const auto& a = target.slot();
    if (!a) continue;
    out.push_back({name, wrap(a->A.detach().clone()), wrap(a->B.detach().clone()), a->alpha});
  }
  return out;
}

void UNetModel::mergeLora() {
  requireNoTrainer("merge LoRA adapters");
  at::NoGradGuard noGrad;
  for (auto& [name, t] : loraTargets(*unet_)) {
    LoraTarget target = t;
    auto& a = target.slot();
    if (!a) continue;
    at::Tensor& w = target.linear ? target.linear->weight : target.conv->weight;
    w.add_(a->mergedWeight().to(w.scalar_type()));
    a.reset();
  }
}

void UNetModel::removeLora() {
  requireNoTrainer("remove LoRA adapters");
  for (auto& [name, t] : loraTargets(*unet_)) {
    LoraTarget target = t;
    target.slot().reset();
  }
}

void UNetModel::forEachSlot(const std::function<void(const std::string&, at::Tensor&)>& fn) {
  unet_->forEachParameter(fn);
  for (auto& [name, t] : loraTargets(*unet_)) {
    LoraTarget target = t;
    auto& a = target.slot();
    if (!a) continue;
    fn(name + ".lora_A.weight", a->A);
    fn(name + ".lora_B.weight", a->B);
  }
}

}  // namespace difftune
