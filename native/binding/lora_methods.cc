#include "binding/lora_methods.h"

#include <string>

#include "binding/tensor_wrap.h"

namespace difftune {

LoraOptions parseLoraOptions(const Napi::Value& value) {
  Napi::Object o = expectObject(value, "lora");
  LoraOptions opts;
  opts.targets = fieldStringList(o, "targets", "lora");
  opts.rank = fieldInt(o, "rank", "lora", 1, 1 << 16);
  opts.alpha = fieldNumber(o, "alpha", "lora");
  opts.dropout = fieldNumber(o, "dropout", "lora");
  opts.init = fieldString(o, "init", "lora");
  opts.seed = static_cast<uint64_t>(fieldInt(o, "seed", "lora", 0, (int64_t{1} << 53) - 1));
  return opts;
}

std::vector<LoraEntry> parseLoraEntries(const Napi::Value& value) {
  if (!value.IsArray()) failArg("an array of { module, A, B, alpha }", "entries", value);
  Napi::Array list = value.As<Napi::Array>();
  std::vector<LoraEntry> entries;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    std::string where = "entries[" + std::to_string(i) + "]";
    Napi::Object e = expectObject(list.Get(i), where);
    entries.push_back({fieldString(e, "module", where), TensorWrap::unwrapArg(e.Get("A"), where + ".A"),
                       TensorWrap::unwrapArg(e.Get("B"), where + ".B"), fieldNumber(e, "alpha", where)});
  }
  return entries;
}

Napi::Value loraEntriesToJs(Napi::Env env, std::vector<LoraEntry>& entries) {
  Napi::Array out = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("module", entries[i].module);
    o.Set("A", TensorWrap::create(env, entries[i].A));
    o.Set("B", TensorWrap::create(env, entries[i].B));
    o.Set("alpha", entries[i].alpha);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

}  // namespace difftune
