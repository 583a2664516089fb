#include <ATen/ATen.h>

#include <cstring>

#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  at::ScalarType scalar;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::Float32, "float32", at::kFloat, 4}, {DType::Float64, "float64", at::kDouble, 8},
    {DType::Float16, "float16", at::kHalf, 2},  {DType::BFloat16, "bfloat16", at::kBFloat16, 2},
    {DType::Int64, "int64", at::kLong, 8},      {DType::Int32, "int32", at::kInt, 4},
    {DType::Int16, "int16", at::kShort, 2},     {DType::Int8, "int8", at::kChar, 1},
    {DType::UInt8, "uint8", at::kByte, 1},      {DType::Bool, "bool", at::kBool, 1},
};

const DTypeEntry& entry(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e;
  throw std::logic_error("dtype enum out of range");
}

}  // namespace

const char* dtypeName(DType dtype) { return entry(dtype).name; }
size_t dtypeSize(DType dtype) { return entry(dtype).size; }

bool parseDType(const std::string& name, DType* out) {
  for (const auto& e : kDTypes) {
    if (name == e.name) {
      *out = e.dtype;
      return true;
    }
  }
  return false;
}

at::ScalarType toScalarType(DType dtype) { return entry(dtype).scalar; }

DType fromScalarType(at::ScalarType type) {
  for (const auto& e : kDTypes)
    if (e.scalar == type) return e.dtype;
  throw InvalidArgument(std::string("tensor has dtype ") + c10::toString(type) + ", which difftune does not expose to JavaScript");
}

std::vector<int64_t> Tensor::shape() const {
  auto sizes = unwrap(*this).sizes();
  return {sizes.begin(), sizes.end()};
}
int64_t Tensor::numel() const { return unwrap(*this).numel(); }
DType Tensor::dtype() const { return fromScalarType(unwrap(*this).scalar_type()); }
std::string Tensor::device() const { return unwrap(*this).device().str(); }
bool Tensor::isCpu() const { return unwrap(*this).device().is_cpu(); }
size_t Tensor::nbytes() const {
  const auto& t = unwrap(*this);
  return static_cast<size_t>(t.numel()) * t.element_size();
}

void Tensor::copyToHost(void* dst, size_t dstBytes) const {
  const auto& t = unwrap(*this);
  if (!t.device().is_cpu())
    throw InvalidArgument("Expected a CPU tensor for a synchronous read but received a tensor on " + t.device().str() +
                          "; use the asynchronous read()");
  if (dstBytes != nbytes()) throw std::logic_error("copyToHost: destination size does not match the tensor");
  if (dstBytes == 0) return;
  at::Tensor c = t.contiguous();
  std::memcpy(dst, c.data_ptr(), dstBytes);
}

void* Tensor::hostData() const {
  const auto& t = unwrap(*this);
  if (!t.device().is_cpu() || !t.is_contiguous()) throw std::logic_error("hostData: tensor is not a contiguous CPU tensor");
  return t.data_ptr();
}

Tensor Tensor::fromHost(const void* bytes, size_t byteLength, DType dtype, const std::vector<int64_t>& shape) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(toScalarType(dtype)));
  if (static_cast<size_t>(t.numel()) * t.element_size() != byteLength)
    throw InvalidArgument("Expected " + std::to_string(t.numel() * t.element_size()) +
                          " bytes for data (shape × dtype size) but received " + std::to_string(byteLength) + " bytes");
  if (byteLength > 0) std::memcpy(t.data_ptr(), bytes, byteLength);
  return wrap(std::move(t));
}

std::string checkDevice(const std::string& device) {
  c10::Device parsed(c10::kCPU);
  try {
    parsed = c10::Device(device);
  } catch (const c10::Error&) {
    return "Expected a device like \"cpu\", \"cuda\" or \"cuda:0\" for device but received \"" + device + "\"";
  }
  if (parsed.is_cpu()) return "";
  if (parsed.is_cuda()) {
    if (!at::hasCUDA())
      return "device \"" + device +
             "\" was requested but this libtorch has no CUDA support (or no GPU is visible); "
             "use \"cpu\" or build difftune against a CUDA libtorch";
    // Without this, an index past the last GPU fails later inside libtorch with a less direct message.
    int64_t count = static_cast<int64_t>(at::getNumGPUs());
    if (parsed.has_index() && parsed.index() >= count)
      return "device \"" + device + "\" was requested but only " + std::to_string(count) + " CUDA device(s) are visible (cuda:0" +
             (count > 1 ? " to cuda:" + std::to_string(count - 1) : std::string()) + ")";
    return "";
  }
  return "device \"" + device + "\" is not supported; use \"cpu\" or \"cuda[:N]\"";
}

Tensor copyTo(const Tensor& src, const std::string& device, DType dtype) {
  std::string problem = checkDevice(device);
  if (!problem.empty()) throw InvalidArgument(problem);
  const at::Tensor& t = unwrap(src);
  // copy=true: never an alias of the source, even when device and dtype already match.
  return wrap(t.to(c10::Device(device), toScalarType(dtype), /*non_blocking=*/false, /*copy=*/true).contiguous());
}

}  // namespace difftune
