// A torch-free handle on a libtorch tensor, so that N-API glue can hold and pass tensors without
// including torch headers (each of those costs seconds of compile time on 2 cores).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace difftune {

enum class DType : int { Float32, Float64, Float16, BFloat16, Int64, Int32, Int16, Int8, UInt8, Bool };

const char* dtypeName(DType dtype);
// Parses the names above as JS spells them ("float32", "bfloat16", ...); false when unknown.
bool parseDType(const std::string& name, DType* out);
size_t dtypeSize(DType dtype);

struct TensorData;  // holds the at::Tensor; defined in tensor_data.h

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorData> data) : data_(std::move(data)) {}

  bool defined() const { return data_ != nullptr; }
  std::vector<int64_t> shape() const;
  int64_t numel() const;
  DType dtype() const;
  std::string device() const;
  bool isCpu() const;
  // Bytes of the tensor's elements (numel × element size), what it costs in memory.
  size_t nbytes() const;

  // Copies the elements, contiguous and in this tensor's dtype, into dst. CPU tensors only.
  void copyToHost(void* dst, size_t dstBytes) const;
  // The element buffer of a contiguous CPU tensor (for zero-copy hand-over to JS).
  void* hostData() const;

  // A new CPU tensor holding a copy of `bytes` (little-endian, row-major).
  static Tensor fromHost(const void* bytes, size_t byteLength, DType dtype, const std::vector<int64_t>& shape);

  const std::shared_ptr<TensorData>& data() const { return data_; }

 private:
  std::shared_ptr<TensorData> data_;
};

// Compute-thread operations (they may be slow: run them through the compute queue).

// A copy on `device` ("cpu", "cuda", "cuda:1") with `dtype`; always a new tensor, never an alias,
// so the result can be handed to JS while training keeps updating the source.
Tensor copyTo(const Tensor& src, const std::string& device, DType dtype);

// Checks a device string against what this libtorch supports; returns an error message or "".
std::string checkDevice(const std::string& device);

}  // namespace difftune
