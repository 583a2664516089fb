// A small module/parameter registry on ATen, in place of torch::nn (whose headers cost a slow
// compile on 2 cores). Children and parameters are registered under diffusers' attribute names, so
// namedParameters() yields exactly the diffusers state-dict keys ("down_blocks.0.resnets.0.conv1.weight").
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace difftune {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // (name, tensor) for every parameter, depth first in registration order: diffusers' key order.
  std::vector<std::pair<std::string, at::Tensor>> namedParameters() const;
  // Visits every parameter slot (to replace it: loading weights, moving devices, casting dtypes).
  void forEachParameter(const std::function<void(const std::string& name, at::Tensor& slot)>& fn);
  // Visits this module and all descendants (train/eval flags, options).
  void forEachModule(const std::function<void(Module&)>& fn);
  // Visits every descendant with its dotted path ("down_blocks.0.attentions.0...to_q"); the root is "".
  void forEachNamedModule(const std::function<void(const std::string& name, Module&)>& fn, const std::string& prefix = "");

  bool training() const { return training_; }
  void setTraining(bool on);

 protected:
  at::Tensor& registerParameter(const std::string& name, at::Tensor value);
  template <typename M>
  std::shared_ptr<M> registerModule(const std::string& name, std::shared_ptr<M> module) {
    children_.emplace_back(name, module);
    return module;
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, at::Tensor>>& out) const;
  void visit(const std::string& prefix, const std::function<void(const std::string&, at::Tensor&)>& fn);

  // Stable addresses: the subclass keeps references to its parameters' slots.
  std::vector<std::pair<std::string, std::unique_ptr<at::Tensor>>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = false;
};

// A ModuleList: children named "0", "1", ... (diffusers' nn.ModuleList keys).
template <typename M>
class ModuleList : public Module {
 public:
  std::shared_ptr<M> push(std::shared_ptr<M> m) {
    items_.push_back(registerModule(std::to_string(items_.size()), std::move(m)));
    return items_.back();
  }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  M& operator[](size_t i) { return *items_.at(i); }
  auto begin() { return items_.begin(); }
  auto end() { return items_.end(); }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace difftune
