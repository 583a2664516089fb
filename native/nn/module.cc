#include "nn/module.h"

namespace difftune {

at::Tensor& Module::registerParameter(const std::string& name, at::Tensor value) {
  params_.emplace_back(name, std::make_unique<at::Tensor>(std::move(value)));
  return *params_.back().second;
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, at::Tensor>>& out) const {
  for (const auto& [name, slot] : params_) out.emplace_back(prefix + name, *slot);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<std::pair<std::string, at::Tensor>> Module::namedParameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  collect("", out);
  return out;
}

void Module::visit(const std::string& prefix, const std::function<void(const std::string&, at::Tensor&)>& fn) {
  for (auto& [name, slot] : params_) fn(prefix + name, *slot);
  for (auto& [name, child] : children_) child->visit(prefix + name + ".", fn);
}

void Module::forEachParameter(const std::function<void(const std::string& name, at::Tensor& slot)>& fn) { visit("", fn); }

void Module::forEachModule(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (auto& [name, child] : children_) child->forEachModule(fn);
}

void Module::forEachNamedModule(const std::function<void(const std::string&, Module&)>& fn, const std::string& prefix) {
  fn(prefix, *this);
  for (auto& [name, child] : children_) child->forEachNamedModule(fn, prefix.empty() ? name : prefix + "." + name);
}

void Module::setTraining(bool on) {
  forEachModule([on](Module& m) { m.training_ = on; });
}

}  // namespace difftune
