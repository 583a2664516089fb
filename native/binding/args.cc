#include "binding/args.h"

#include <cmath>

#include "tensor/failure.h"

namespace difftune {

std::string describe(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return std::string(value.As<Napi::Boolean>().Value() ? "true" : "false") + " of type boolean";
    case napi_number: {
      Napi::Env env = value.Env();
      std::string text = value.ToString().Utf8Value();
      (void)env;
      return text + " of type number";
    }
    case napi_string: {
      std::string s = value.As<Napi::String>().Utf8Value();
      if (s.size() > 60) s = s.substr(0, 57) + "...";
      return "\"" + s + "\" of type string";
    }
    case napi_bigint: return value.ToString().Utf8Value() + "n of type bigint";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_object: {
      if (value.IsArray()) return "an array of length " + std::to_string(value.As<Napi::Array>().Length());
      if (value.IsTypedArray()) return "a typed array of " + std::to_string(value.As<Napi::TypedArray>().ByteLength()) + " bytes";
      if (value.IsArrayBuffer()) return "an ArrayBuffer of " + std::to_string(value.As<Napi::ArrayBuffer>().ByteLength()) + " bytes";
      return "an object";
    }
    default: return "a value of unknown type";
  }
}

void failArg(const std::string& what, const std::string& param, const Napi::Value& value) {
  throw InvalidArgument("Expected " + what + " for " + param + " but received " + describe(value));
}

Napi::Value argAt(const Napi::CallbackInfo& info, size_t index) { return index < info.Length() ? info[index] : info.Env().Undefined(); }

int64_t expectInt(const Napi::Value& value, const std::string& param, int64_t min, int64_t max) {
  std::string what = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!value.IsNumber()) failArg(what, param, value);
  double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(min) || d > static_cast<double>(max)) failArg(what, param, value);
  return static_cast<int64_t>(d);
}

bool expectBool(const Napi::Value& value, const std::string& param) {
  if (!value.IsBoolean()) failArg("a boolean", param, value);
  return value.As<Napi::Boolean>().Value();
}

std::string expectString(const Napi::Value& value, const std::string& param) {
  if (!value.IsString()) failArg("a string", param, value);
  return value.As<Napi::String>().Utf8Value();
}

Napi::Object expectObject(const Napi::Value& value, const std::string& param) {
  if (!value.IsObject() || value.IsArray() || value.IsFunction()) failArg("an object", param, value);
  return value.As<Napi::Object>();
}

Napi::Function expectFunction(const Napi::Value& value, const std::string& param) {
  if (!value.IsFunction()) failArg("a function", param, value);
  return value.As<Napi::Function>();
}

DType expectDType(const Napi::Value& value, const std::string& param) {
  const char* what =
      "one of \"float32\", \"float64\", \"float16\", \"bfloat16\", \"int64\", \"int32\", \"int16\", "
      "\"int8\", \"uint8\", \"bool\"";
  if (!value.IsString()) failArg(what, param, value);
  DType dtype;
  if (!parseDType(value.As<Napi::String>().Utf8Value(), &dtype)) failArg(what, param, value);
  return dtype;
}

std::vector<int64_t> expectShape(const Napi::Value& value, const std::string& param) {
  const char* what = "an array of at most 8 non-negative integers";
  if (!value.IsArray()) failArg(what, param, value);
  Napi::Array array = value.As<Napi::Array>();
  if (array.Length() > 8) failArg(what, param, value);
  std::vector<int64_t> shape;
  double numel = 1;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value v = array.Get(i);
    int64_t dim = expectInt(v, param + "[" + std::to_string(i) + "]", 0, (int64_t{1} << 53) - 1);
    numel *= static_cast<double>(dim);
    shape.push_back(dim);
  }
  if (numel > 9007199254740991.0) failArg("a shape with fewer than 2^53 elements", param, value);
  return shape;
}

ByteView expectBytes(const Napi::Value& value, const std::string& param) {
  if (value.IsTypedArray()) {
    auto array = value.As<Napi::TypedArray>();
    const auto* base = static_cast<const uint8_t*>(array.ArrayBuffer().Data());
    return {base == nullptr ? nullptr : base + array.ByteOffset(), array.ByteLength()};
  }
  if (value.IsDataView()) {
    auto view = value.As<Napi::DataView>();
    const auto* base = static_cast<const uint8_t*>(view.ArrayBuffer().Data());
    return {base == nullptr ? nullptr : base + view.ByteOffset(), view.ByteLength()};
  }
  if (value.IsArrayBuffer()) {
    auto buffer = value.As<Napi::ArrayBuffer>();
    return {static_cast<const uint8_t*>(buffer.Data()), buffer.ByteLength()};
  }
  failArg("a TypedArray, Buffer, DataView or ArrayBuffer", param, value);
}

}  // namespace difftune

namespace difftune {

namespace {
std::string fieldName(const std::string& param, const std::string& key) { return param + "." + key; }

Napi::Array expectArray(const Napi::Value& v, const std::string& name) {
  if (!v.IsArray()) failArg("an array", name, v);
  return v.As<Napi::Array>();
}
}  // namespace

double fieldNumber(const Napi::Object& o, const std::string& key, const std::string& param) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) failArg("a number", fieldName(param, key), v);
  return v.As<Napi::Number>().DoubleValue();
}

int64_t fieldInt(const Napi::Object& o, const std::string& key, const std::string& param, int64_t min, int64_t max) {
  return expectInt(o.Get(key), fieldName(param, key), min, max);
}

bool fieldBool(const Napi::Object& o, const std::string& key, const std::string& param) {
  return expectBool(o.Get(key), fieldName(param, key));
}

std::string fieldString(const Napi::Object& o, const std::string& key, const std::string& param) {
  return expectString(o.Get(key), fieldName(param, key));
}

std::vector<int64_t> fieldIntList(const Napi::Object& o, const std::string& key, const std::string& param, int64_t min, int64_t max) {
  std::string name = fieldName(param, key);
  Napi::Array a = expectArray(o.Get(key), name);
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(expectInt(a.Get(i), name + "[" + std::to_string(i) + "]", min, max));
  return out;
}

std::vector<std::string> fieldStringList(const Napi::Object& o, const std::string& key, const std::string& param) {
  return expectStringArray(o.Get(key), fieldName(param, key));
}

std::vector<bool> fieldBoolList(const Napi::Object& o, const std::string& key, const std::string& param) {
  std::string name = fieldName(param, key);
  Napi::Array a = expectArray(o.Get(key), name);
  std::vector<bool> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(expectBool(a.Get(i), name + "[" + std::to_string(i) + "]"));
  return out;
}

std::vector<std::string> expectStringArray(const Napi::Value& value, const std::string& param) {
  Napi::Array a = expectArray(value, param);
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(expectString(a.Get(i), param + "[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace difftune
