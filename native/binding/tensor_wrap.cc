#include "binding/tensor_wrap.h"

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

// The JS array type for reading a tensor back; half types come back as float32 unless raw.
struct ReadPlan {
  DType readAs;
  napi_typedarray_type arrayType;
};

ReadPlan readPlan(DType dtype, bool raw) {
  switch (dtype) {
    case DType::Float32: return {DType::Float32, napi_float32_array};
    case DType::Float64: return {DType::Float64, napi_float64_array};
    case DType::Float16:
    case DType::BFloat16: return raw ? ReadPlan{dtype, napi_uint16_array} : ReadPlan{DType::Float32, napi_float32_array};
    case DType::Int64: return {DType::Int64, napi_bigint64_array};
    case DType::Int32: return {DType::Int32, napi_int32_array};
    case DType::Int16: return {DType::Int16, napi_int16_array};
    case DType::Int8: return {DType::Int8, napi_int8_array};
    case DType::UInt8: return {DType::UInt8, napi_uint8_array};
    case DType::Bool: return {DType::Bool, napi_uint8_array};
  }
  throw std::logic_error("dtype enum out of range");
}

Napi::Value typedArrayOver(Napi::Env env, Napi::ArrayBuffer buffer, napi_typedarray_type type, size_t length) {
  napi_value result;
  napi_status status = napi_create_typedarray(env, type, length, buffer, 0, &result);
  NAPI_THROW_IF_FAILED(env, status, Napi::Value());
  return Napi::Value(env, result);
}

bool optionalRaw(const Napi::CallbackInfo& info) {
  Napi::Value v = argAt(info, 0);
  return v.IsUndefined() ? false : expectBool(v, "raw");
}

}  // namespace

Napi::Function TensorWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         StaticMethod<&TensorWrap::fromBytes>("fromBytes"),
                         InstanceAccessor<&TensorWrap::shape>("shape"),
                         InstanceAccessor<&TensorWrap::dtype>("dtype"),
                         InstanceAccessor<&TensorWrap::device>("device"),
                         InstanceAccessor<&TensorWrap::byteLength>("byteLength"),
                         InstanceAccessor<&TensorWrap::disposed>("disposed"),
                         InstanceMethod<&TensorWrap::readSync>("readSync"),
                         InstanceMethod<&TensorWrap::read>("read"),
                         InstanceMethod<&TensorWrap::to>("to"),
                         InstanceMethod<&TensorWrap::dispose>("dispose"),
                     });
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  boundary(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw InvalidArgument("NativeTensor cannot be constructed directly; use NativeTensor.fromBytes()");
    tensor_ = *info[0].As<Napi::External<Tensor>>().Data();
    reportedBytes_ = static_cast<int64_t>(tensor_.nbytes());
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), reportedBytes_);
    return 0;
  });
}

TensorWrap::~TensorWrap() {
  // GC safety net for handles never disposed: the reference drops with this object.
  if (reportedBytes_ != 0) Napi::MemoryManagement::AdjustExternalMemory(Env(), -reportedBytes_);
}

Napi::Object TensorWrap::create(Napi::Env env, Tensor tensor) {
  Napi::External<Tensor> external = Napi::External<Tensor>::New(env, &tensor);
  return addonState(env).tensorConstructor.New({external});
}

const Tensor& TensorWrap::unwrapArg(const Napi::Value& value, const std::string& param) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addonState(env).tensorConstructor.Value()))
    failArg("a Tensor", param, value);
  TensorWrap* wrap = Unwrap(value.As<Napi::Object>());
  if (!wrap->tensor_.defined()) throw Disposed("Tensor passed as " + param + " was used after dispose()");
  return wrap->tensor_;
}

const Tensor& TensorWrap::live() const {
  if (!tensor_.defined()) throw Disposed("Tensor was used after dispose()");
  return tensor_;
}

void TensorWrap::release(Napi::Env env) {
  if (!tensor_.defined()) return;
  tensor_ = Tensor();
  Napi::MemoryManagement::AdjustExternalMemory(env, -reportedBytes_);
  reportedBytes_ = 0;
}

Napi::Value TensorWrap::fromBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    ByteView bytes = expectBytes(argAt(info, 0), "data");
    std::vector<int64_t> shape = expectShape(argAt(info, 1), "shape");
    DType dtype = expectDType(argAt(info, 2), "dtype");
    return create(env, Tensor::fromHost(bytes.data, bytes.length, dtype, shape));
  });
}

Napi::Value TensorWrap::shape(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value {
    std::vector<int64_t> dims = live().shape();
    Napi::Array array = Napi::Array::New(info.Env(), dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
      array.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(dims[i])));
    return array;
  });
}

Napi::Value TensorWrap::dtype(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(live().dtype())); });
}

Napi::Value TensorWrap::device(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), live().device()); });
}

Napi::Value TensorWrap::byteLength(const Napi::CallbackInfo& info) {
  return boundary(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(live().nbytes())); });
}

Napi::Value TensorWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !tensor_.defined()); }

Napi::Value TensorWrap::readSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    bool raw = optionalRaw(info);
    const Tensor& t = live();
    // A device tensor's read is a device→host copy (and for fp16/bf16 a conversion kernel) that would
    // block the JS thread and race the compute thread's stream: those reads go through read() instead.
    if (t.device() != "cpu")
      throw InvalidArgument("toArray() reads CPU tensors only, but this tensor is on " + t.device() +
                            ": use `await tensor.data()`, which copies it to the host on the compute thread");
    ReadPlan plan = readPlan(t.dtype(), raw);
    Tensor source = plan.readAs == t.dtype() ? t : copyTo(t, "cpu", plan.readAs);
    size_t bytes = source.nbytes();
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes);
    source.copyToHost(buffer.Data(), bytes);
    return typedArrayOver(env, buffer, plan.arrayType, static_cast<size_t>(source.numel()));
  });
}

Napi::Value TensorWrap::read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    bool raw = optionalRaw(info);
    Tensor t = live();
    ReadPlan plan = readPlan(t.dtype(), raw);
    return addonState(env).compute->run(
        env, [t, plan] { return copyTo(t, "cpu", plan.readAs); },
        [plan](Napi::Env env, Tensor& copy) -> Napi::Value {
          size_t bytes = copy.nbytes();
          size_t length = static_cast<size_t>(copy.numel());
          if (bytes == 0) return typedArrayOver(env, Napi::ArrayBuffer::New(env, 0), plan.arrayType, 0);
          // Zero-copy: the ArrayBuffer aliases the private CPU copy and keeps it alive. V8 does not
          // count external buffers, so report the bytes: otherwise reads pile up until a late GC.
          auto owner = std::make_unique<Tensor>(copy);
          void* data = owner->hostData();
          Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
              env, data, bytes,
              [](Napi::Env env, void*, Tensor* hint) {
                std::unique_ptr<Tensor> drop(hint);
                Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(drop->nbytes()));
              },
              owner.get());
          owner.release();
          Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(bytes));
          return typedArrayOver(env, buffer, plan.arrayType, length);
        });
  });
}

Napi::Value TensorWrap::to(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    Tensor t = live();
    std::string device = expectString(argAt(info, 0), "device");
    std::string problem = checkDevice(device);
    if (!problem.empty()) throw InvalidArgument(problem);
    Napi::Value dtypeArg = argAt(info, 1);
    DType dtype = dtypeArg.IsUndefined() ? t.dtype() : expectDType(dtypeArg, "dtype");
    return addonState(env).compute->run(
        env, [t, device, dtype] { return copyTo(t, device, dtype); },
        [](Napi::Env env, Tensor& result) -> Napi::Value { return create(env, result); });
  });
}

Napi::Value TensorWrap::dispose(const Napi::CallbackInfo& info) {
  release(info.Env());
  return info.Env().Undefined();
}

}  // namespace difftune
