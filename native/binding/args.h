// Argument checks for entry points called from JS. Each failure throws InvalidArgument with
// "Expected <what> for <param> but received <value>", which the boundary turns into a TypeError.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace difftune {

std::string describe(const Napi::Value& value);
[[noreturn]] void failArg(const std::string& what, const std::string& param, const Napi::Value& value);

Napi::Value argAt(const Napi::CallbackInfo& info, size_t index);
int64_t expectInt(const Napi::Value& value, const std::string& param, int64_t min, int64_t max);
bool expectBool(const Napi::Value& value, const std::string& param);
std::string expectString(const Napi::Value& value, const std::string& param);
Napi::Object expectObject(const Napi::Value& value, const std::string& param);
Napi::Function expectFunction(const Napi::Value& value, const std::string& param);
DType expectDType(const Napi::Value& value, const std::string& param);
// An array of non-negative safe integers, at most 8 dimensions.
std::vector<int64_t> expectShape(const Napi::Value& value, const std::string& param);

// The raw bytes of a TypedArray, DataView or Buffer (a view on JS memory: use it before returning).
struct ByteView {
  const uint8_t* data;
  size_t length;
};
ByteView expectBytes(const Napi::Value& value, const std::string& param);

}  // namespace difftune

namespace difftune {

// Fields of a plain JS options object, named "<param>.<key>" in errors.
double fieldNumber(const Napi::Object& o, const std::string& key, const std::string& param);
int64_t fieldInt(const Napi::Object& o, const std::string& key, const std::string& param, int64_t min, int64_t max);
bool fieldBool(const Napi::Object& o, const std::string& key, const std::string& param);
std::string fieldString(const Napi::Object& o, const std::string& key, const std::string& param);
std::vector<int64_t> fieldIntList(const Napi::Object& o, const std::string& key, const std::string& param, int64_t min, int64_t max);
std::vector<std::string> fieldStringList(const Napi::Object& o, const std::string& key, const std::string& param);
std::vector<bool> fieldBoolList(const Napi::Object& o, const std::string& key, const std::string& param);
std::vector<std::string> expectStringArray(const Napi::Value& value, const std::string& param);

}  // namespace difftune
