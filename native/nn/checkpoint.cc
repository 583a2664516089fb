#include "nn/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "nn/autocast.h"
#include "nn/layers.h"
#include "nn/lora.h"

namespace difftune {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BlockHolder : torch::CustomClassHolder {
  BlockFn fn;
  std::vector<bool> defined;  // which inputs were defined (undefined ones are not autograd inputs)
  at::Tensor rngState;
  std::shared_ptr<DropoutKeys> dropoutKeys;  // as they were when the block ran (call counts included)
  // Autocast as it was when the block ran: backward runs after the trainer's autocast scope has ended,
  // and a recomputation in float32 would differentiate other activations than the forward used.
  std::optional<c10::ScalarType> autocastCpu;
  std::optional<c10::ScalarType> autocastCuda;
};

std::shared_ptr<DropoutKeys> copyOf(const std::shared_ptr<DropoutKeys>& keys) {
  return keys ? std::make_shared<DropoutKeys>(*keys) : nullptr;
}

bool usesTrainableWeights(Module& block) {
  bool any = false;
  block.forEachParameter([&](const std::string&, at::Tensor& p) { any = any || p.requires_grad(); });
  block.forEachModule([&](Module& m) {
    const LoraAdapter* a = nullptr;
    if (auto* l = dynamic_cast<Linear*>(&m))
      a = l->lora.get();
    else if (auto* c = dynamic_cast<Conv2d*>(&m))
      a = c->lora.get();
    if (a) any = any || a->A.requires_grad() || a->B.requires_grad();
  });
  return any;
}

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // inputs as a TensorList: custom Functions treat each element of a TensorList as a differentiable
  // input, but a std::vector argument as opaque data.
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<BlockHolder> holder, at::TensorList inputList) {
    variable_list inputs(inputList.begin(), inputList.end());
    holder->rngState = at::detail::getDefaultCPUGenerator().get_state();
    holder->dropoutKeys = copyOf(DropoutKeysScope::current());
    holder->autocastCpu = currentAutocast(c10::DeviceType::CPU);
    holder->autocastCuda = currentAutocast(c10::DeviceType::CUDA);
    std::vector<at::Tensor> full;
    size_t k = 0;
    for (bool d : holder->defined) full.push_back(d ? inputs[k++] : at::Tensor());
    std::vector<at::Tensor> outputs;
    {
      at::NoGradGuard noGrad;
      outputs = holder->fn(full);
    }
    ctx->saved_data["block"] = c10::IValue::make_capsule(holder);
    ctx->save_for_backward(inputs);
    return outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOutputs) {
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    variable_list saved = ctx->get_saved_variables();
    std::vector<at::Tensor> detached;
    for (const auto& t : saved) detached.push_back(t.detach().requires_grad_(t.requires_grad()));
    std::vector<at::Tensor> full;
    size_t k = 0;
    for (bool d : holder->defined) full.push_back(d ? detached[k++] : at::Tensor());

    at::Generator gen = at::detail::getDefaultCPUGenerator();
    at::Tensor current = gen.get_state();
    gen.set_state(holder->rngState);
    std::vector<at::Tensor> outputs;
    {
      // Backward may run on another thread (CUDA's autograd workers) and after the trainer's scope
      // ended: install a copy of the forward's keys, so a second backward could replay them again.
      DropoutKeysScope keys(copyOf(holder->dropoutKeys));
      AutocastScope autocastCpu(c10::DeviceType::CPU, holder->autocastCpu);
      AutocastScope autocastCuda(c10::DeviceType::CUDA, holder->autocastCuda);
      at::AutoGradMode grad(true);
      outputs = holder->fn(full);
    }
    gen.set_state(current);

    // Backpropagate through the recomputed block: accumulates the parameters' .grad and the
    // detached inputs' .grad, which become this function's input gradients.
    std::vector<at::Tensor> outs, grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].requires_grad() && gradOutputs[i].defined()) {
        outs.push_back(outputs[i]);
        grads.push_back(gradOutputs[i]);
      }
    }
    if (!outs.empty()) torch::autograd::backward(outs, grads);
    variable_list result;
    result.push_back(at::Tensor());  // the holder argument has no gradient
    for (const auto& t : detached) result.push_back(t.requires_grad() ? t.grad() : at::Tensor());
    return result;
  }
};

}  // namespace

std::vector<at::Tensor> checkpoint(const BlockFn& fn, const std::vector<at::Tensor>& inputs, Module& block) {
  if (!at::GradMode::is_enabled()) return fn(inputs);
  auto holder = c10::make_intrusive<BlockHolder>();
  holder->fn = fn;
  variable_list defined;
  bool inputNeedsGrad = false;
  for (const auto& t : inputs) {
    holder->defined.push_back(t.defined());
    if (t.defined()) defined.push_back(t);
    inputNeedsGrad = inputNeedsGrad || (t.defined() && t.requires_grad());
  }
  // Autograd sees only the function's inputs: with none requiring grad, the outputs would not either,
  // and backward would never reach the block's own trainable weights. An extra empty input that
  // requires grad (fn never sees it; its gradient stays undefined) keeps the block in the graph.
  if (!inputNeedsGrad && usesTrainableWeights(block)) defined.push_back(at::empty({0}).requires_grad_(true));
  return CheckpointFunction::apply(holder, at::TensorList(defined));
}

at::Tensor checkpointLayer(bool recompute, const LayerFn& fn, const std::vector<at::Tensor>& inputs, Module& layer) {
  if (!recompute) return fn(inputs);
  // By value: backward calls it again after the caller's frame is gone.
  return checkpoint([fn](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{fn(in)}; }, inputs, layer)[0];
}

}  // namespace difftune
