#include "binding/errors.h"

namespace difftune {

Napi::Error toJsError(Napi::Env env, const Failure& failure) {
  Napi::Error error =
      failure.code == "ERR_INVALID_ARG" ? Napi::TypeError::New(env, failure.message) : Napi::Error::New(env, failure.message);
  error.Set("code", Napi::String::New(env, failure.code));
  return error;
}

}  // namespace difftune
