#include "nn/lora.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <map>
#include <stdexcept>
#include <utility>

#include "nn/autocast.h"
#include "nn/layers.h"
#include "tensor/failure.h"
#include "tensor/generator.h"
#include "tensor/shape_text.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

thread_local std::shared_ptr<DropoutKeys> currentKeys;

// Inverted dropout (scale 1/(1−p)) with item i's mask drawn on the CPU from its own keyed generator,
// as the trainer's noise is: the same masks on every device and for any batch composition.
at::Tensor keyedDropout(const at::Tensor& x, double p, uint64_t layerKey, DropoutKeys& keys) {
  if (x.dim() < 1 || x.size(0) != static_cast<int64_t>(keys.sampleKeys.size()))
    throw std::logic_error("LoRA dropout: " + std::to_string(keys.sampleKeys.size()) + " sample keys for an input of shape " +
                           shapeText(x.sizes()));
  uint64_t call = keys.calls[layerKey]++;
  auto shape = x.sizes().slice(1);
  std::vector<at::Tensor> masks;
  masks.reserve(keys.sampleKeys.size());
  for (uint64_t sample : keys.sampleKeys) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(splitmix64(splitmix64(sample ^ layerKey) ^ call));
    masks.push_back(at::empty(shape, at::TensorOptions().dtype(at::kFloat)).bernoulli_(1 - p, gen));
  }
  // As at::dropout: noise = bernoulli(1−p) / (1−p) in the input's dtype, then x · noise.
  at::Tensor noise = at::stack(masks).to(x.device(), x.scalar_type()).div_(1 - p);
  return x * noise;
}

}  // namespace

DropoutKeysScope::DropoutKeysScope(std::shared_ptr<DropoutKeys> keys) : previous_(std::move(currentKeys)) { currentKeys = std::move(keys); }

DropoutKeysScope::~DropoutKeysScope() { currentKeys = std::move(previous_); }

const std::shared_ptr<DropoutKeys>& DropoutKeysScope::current() { return currentKeys; }

uint64_t loraLayerKey(const std::string& module) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a
  for (unsigned char c : module) h = (h ^ c) * 0x100000001B3ULL;
  return splitmix64(h);
}

at::Tensor LoraAdapter::delta(const at::Tensor& x, bool training) const {
  at::Tensor in = x;
  if (training && dropout > 0) {
    const auto& keys = DropoutKeysScope::current();
    in = keys ? keyedDropout(x, dropout, key, *keys) : at::dropout(x, dropout, true);
  }
  // Under autocast the adapter computes like its base layer; otherwise in the adapter's dtype (float32),
  // handing the layer back its input's dtype (a bfloat16 text encoder sampling with adapters).
  bool cast = in.scalar_type() != A.scalar_type() && !autocastEnabled(in.device().type());
  if (cast) in = in.to(A.scalar_type());
  at::Tensor out;
  if (conv) {
    at::Tensor h = at::conv2d(in, A, {}, {stride, stride}, {padding, padding});
    out = at::conv2d(h, B) * scale();
  } else {
    out = at::linear(at::linear(in, A), B) * scale();
  }
  return cast ? out.to(x.scalar_type()) : out;
}

at::Tensor LoraAdapter::mergedWeight() const {
  at::Tensor a = A.reshape({A.size(0), -1});         // [r, in·k·k]
  at::Tensor b = B.reshape({B.size(0), B.size(1)});  // [out, r]
  at::Tensor w = at::matmul(b, a) * scale();         // [out, in·k·k]
  return conv ? w.view({B.size(0), A.size(1), kernel, kernel}) : w;
}

namespace {

struct LoraTarget {
  Linear* linear = nullptr;
  Conv2d* conv = nullptr;
  std::shared_ptr<LoraAdapter>& slot() const { return linear ? linear->lora : conv->lora; }
  at::Tensor& weight() const { return linear ? linear->weight : conv->weight; }
};

// Every Linear and Conv2d layer by module path; std::map keeps the listing order stable.
std::map<std::string, LoraTarget> loraTargets(Module& root) {
  std::map<std::string, LoraTarget> out;
  root.forEachNamedModule([&](const std::string& name, Module& m) {
    if (auto* l = dynamic_cast<Linear*>(&m))
      out[name].linear = l;
    else if (auto* c = dynamic_cast<Conv2d*>(&m))
      out[name].conv = c;
  });
  return out;
}

LoraTarget findTarget(const std::map<std::string, LoraTarget>& targets, const std::string& module) {
  auto it = targets.find(module);
  if (it == targets.end()) throw InvalidArgument("LoRA target \"" + module + "\" is not a Linear or Conv2d layer of this model");
  return it->second;
}

// An adapter on `t` with its geometry; A and B are set by the caller.
std::shared_ptr<LoraAdapter> adapterFor(const LoraTarget& t, const std::string& module, int64_t rank, double alpha, double dropout) {
  auto a = std::make_shared<LoraAdapter>();
  a->rank = rank;
  a->alpha = alpha;
  a->dropout = dropout;
  a->key = loraLayerKey(module);
  if (t.conv) {
    a->conv = true;
    a->kernel = t.conv->kernel;
    a->stride = t.conv->stride;
    a->padding = t.conv->padding;
  }
  return a;
}

}  // namespace

void addLoraAdapters(Module& root, const LoraOptions& o) {
  if (o.rank < 1) throw InvalidArgument("Expected a positive LoRA rank but received " + std::to_string(o.rank));
  if (o.targets.empty()) throw InvalidArgument("LoRA needs at least one target layer");
  if (o.init != "kaiming" && o.init != "gaussian")
    throw InvalidArgument("Expected \"kaiming\" or \"gaussian\" for the LoRA init but received \"" + o.init + "\"");
  auto targets = loraTargets(root);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  at::NoGradGuard noGrad;
  for (const auto& module : o.targets) {
    LoraTarget t = findTarget(targets, module);
    if (t.slot()) throw InvalidArgument("layer \"" + module + "\" already has a LoRA adapter");
    auto a = adapterFor(t, module, o.rank, o.alpha, o.dropout);
    const at::Tensor& w = t.weight();
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
    t.slot() = a;
  }
}

void setLoraAdapters(Module& root, const std::vector<LoraEntry>& entries, double dropout) {
  auto targets = loraTargets(root);
  std::vector<std::pair<LoraTarget, std::shared_ptr<LoraAdapter>>> planned;
  for (const auto& e : entries) {
    LoraTarget t = findTarget(targets, e.module);
    const at::Tensor& w = t.weight();
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
    auto a = adapterFor(t, e.module, rank, e.alpha > 0 ? e.alpha : static_cast<double>(rank), dropout);
    a->A = A.to(w.device(), at::kFloat).detach().clone().set_requires_grad(true);
    a->B = B.to(w.device(), at::kFloat).detach().clone().set_requires_grad(true);
    planned.emplace_back(t, a);
  }
  for (auto& [t, a] : planned) t.slot() = a;  // all or nothing
}

std::vector<LoraEntry> loraAdapterEntries(Module& root) {
  std::vector<LoraEntry> out;
  at::NoGradGuard noGrad;
  for (const auto& [name, t] : loraTargets(root)) {
    const auto& a = t.slot();
    if (a) out.push_back({name, wrap(a->A.detach().clone()), wrap(a->B.detach().clone()), a->alpha});
  }
  return out;
}

void mergeLoraAdapters(Module& root) {
  at::NoGradGuard noGrad;
  for (const auto& [name, t] : loraTargets(root)) {
    auto& a = t.slot();
    if (!a) continue;
    at::Tensor& w = t.weight();
    w.add_(a->mergedWeight().to(w.scalar_type()));
    a.reset();
  }
}

void removeLoraAdapters(Module& root) {
  for (const auto& [name, t] : loraTargets(root)) t.slot().reset();
}

void forEachLoraSlot(Module& root, const std::function<void(const std::string&, at::Tensor&)>& fn) {
  for (const auto& [name, t] : loraTargets(root)) {
    auto& a = t.slot();
    if (!a) continue;
    fn(name + ".lora_A.weight", a->A);
    fn(name + ".lora_B.weight", a->B);
  }
}

}  // namespace difftune
