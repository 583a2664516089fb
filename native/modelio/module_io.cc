#include "modelio/module_io.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <map>

#include "nn/layers.h"
#include "tensor/failure.h"
#include "tensor/runtime.h"
#include "tensor/shape_text.h"
#include "tensor/tensor_data.h"

namespace difftune {

std::vector<ParameterInfo> parameterInfos(const Module& model) {
  std::vector<ParameterInfo> out;
  for (const auto& [name, t] : model.namedParameters()) {
    auto sizes = t.sizes();
    out.push_back({name, {sizes.begin(), sizes.end()}, fromScalarType(t.scalar_type()), t.requires_grad()});
  }
  return out;
}

namespace {

void appendList(std::string& msg, const char* what, const std::vector<std::string>& names) {
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
}

}  // namespace

void checkModuleStateDict(const Module& model, const std::vector<ParameterInfo>& weights, const std::string& source,
                          const std::set<std::string>& ignored, bool floatsOnly) {
  std::map<std::string, const ParameterInfo*> given;
  std::vector<std::string> duplicates;
  for (const auto& w : weights) {
    if (ignored.count(w.name)) continue;
    if (!given.emplace(w.name, &w).second) duplicates.push_back(w.name);
  }
  std::vector<std::string> missing, wrongShape, wrongType;
  std::set<std::string> used;
  for (const auto& [name, param] : model.namedParameters()) {
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
      continue;
    }
    used.insert(name);
    if (c10::IntArrayRef(it->second->shape) != param.sizes())
      wrongShape.push_back(name + " (expected " + shapeText(param.sizes()) + ", found " + shapeText(c10::IntArrayRef(it->second->shape)) +
                           ")");
    else if (floatsOnly && !at::isFloatingType(toScalarType(it->second->dtype)))
      wrongType.push_back(name + " (expected a floating-point tensor, found " +
                          std::string(c10::toString(toScalarType(it->second->dtype))) + ")");
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, w] : given)
    if (!used.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !wrongShape.empty() || !wrongType.empty() || !duplicates.empty()) {
    std::string msg = source + " does not match the model's config:";
    appendList(msg, "missing weights", missing);
    appendList(msg, "unexpected weights", unexpected);
    appendList(msg, "wrongly shaped weights", wrongShape);
    appendList(msg, "weights of a non-float dtype", wrongType);
    appendList(msg, "duplicate weights", duplicates);
    throw InvalidArgument(msg);
  }
}

void copyModuleWeights(Module& model, const NamedTensors& weights, const std::string& source, const std::set<std::string>& ignored) {
  std::map<std::string, const at::Tensor*> given;
  for (const auto& [name, t] : weights)
    if (!ignored.count(name)) given.emplace(name, &unwrap(t));
  size_t found = 0;
  at::NoGradGuard noGrad;
  model.forEachParameter([&](const std::string& name, at::Tensor& slot) {
    auto it = given.find(name);
    if (it == given.end()) return;
    if (it->second->sizes() != slot.sizes())
      throw InvalidArgument(source + ": weight " + name + " has shape " + shapeText(it->second->sizes()) + " but the model's is " +
                            shapeText(slot.sizes()));
    slot.copy_(*it->second);
    ++found;
  });
  if (found != given.size()) {
    std::vector<std::string> unknown;
    std::set<std::string> params;
    for (const auto& [name, t] : model.namedParameters()) params.insert(name);
    for (const auto& [name, t] : given)
      if (!params.count(name)) unknown.push_back(name);
    std::string msg = source + " does not match the model's config:";
    appendList(msg, "unexpected weights", unknown);
    throw InvalidArgument(msg);
  }
}

void loadModuleStateDict(Module& model, const NamedTensors& weights, const std::string& source, const std::set<std::string>& ignored,
                         bool floatsOnly) {
  std::vector<ParameterInfo> infos;
  infos.reserve(weights.size());
  for (const auto& [name, t] : weights) {
    const at::Tensor& x = unwrap(t);
    infos.push_back({name, x.sizes().vec(), fromScalarType(x.scalar_type()), false});
  }
  checkModuleStateDict(model, infos, source, ignored, floatsOnly);
  copyModuleWeights(model, weights, source, ignored);
}

NamedTensors moduleStateDict(const Module& model) {
  NamedTensors out;
  at::NoGradGuard noGrad;
  for (const auto& [name, t] : model.namedParameters()) out.emplace_back(name, wrap(t.detach().clone()));
  return out;
}

void moveModule(Module& model, const std::string& device, DType dtype) {
  std::string problem = checkDevice(device);
  if (!problem.empty()) throw InvalidArgument(problem);
  at::ScalarType type = toScalarType(dtype);
  if (!at::isFloatingType(type))
    throw InvalidArgument(std::string("Expected a floating-point dtype for the model but received ") + dtypeName(dtype));
  if (type == at::kBFloat16 && c10::Device(device).is_cpu()) noteCpuBf16Compute();
  at::NoGradGuard noGrad;
  model.forEachParameter([&](const std::string&, at::Tensor& slot) {
    bool grad = slot.requires_grad();
    slot = slot.to(c10::Device(device), type).detach().set_requires_grad(grad);
  });
}

void initializeModule(Module& model, uint64_t seed, const std::string& device, DType dtype) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  moveModule(model, "cpu", DType::Float32);
  resetParameters(model, gen);
  moveModule(model, device, dtype);
}

void clearGradients(Module& model) {
  model.forEachParameter([](const std::string&, at::Tensor& p) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  });
}

NamedTensors takeGradients(Module& model, const std::vector<std::string>& names) {
  std::set<std::string> wanted(names.begin(), names.end());
  std::set<std::string> found;
  NamedTensors out;
  model.forEachParameter([&](const std::string& name, at::Tensor& p) {
    if (!wanted.empty() && !wanted.count(name)) return;
    found.insert(name);
    out.emplace_back(name, wrap(p.grad().defined() ? p.grad() : at::zeros_like(p)));
  });
  clearGradients(model);
  for (const auto& n : wanted)
    if (!found.count(n)) throw InvalidArgument("gradient requested for \"" + n + "\", which is not a parameter of this model");
  return out;
}

MseBackwardResult forwardBackwardMse(Module& model, const std::function<at::Tensor()>& forward, const Tensor& target,
                                     const std::vector<std::string>& names) {
  if (!target.defined()) throw InvalidArgument("Expected a Tensor for target");
  at::AutoGradMode grad(true);
  at::Tensor out = forward();
  const at::Tensor& tgt = unwrap(target);
  if (tgt.sizes() != out.sizes())
    throw InvalidArgument("Expected a target of shape " + shapeText(out.sizes()) + " but received " + shapeText(tgt.sizes()));
  // The loss in float32 even under autocast or for a bf16 model: a bf16 mean over many elements loses
  // the small errors.
  at::Tensor loss = at::mse_loss(out.to(at::kFloat), tgt.to(out.device(), at::kFloat));
  clearGradients(model);
  loss.backward();
  MseBackwardResult r;
  r.output = wrap(out.detach());
  r.loss = wrap(loss.detach());
  // Gradients are handed out, never accumulated across calls.
  r.gradParams = takeGradients(model, names);
  return r;
}

}  // namespace difftune
