// Exceptions native code throws on purpose, and the one classification of any exception into a code
// and a clean message, used by the single error boundary (binding/errors.h).
#pragma once

#include <stdexcept>
#include <string>

namespace difftune {

// A bad value from the caller: "Expected <what> for <param> but received <value>".
struct InvalidArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A handle used after dispose().
struct Disposed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Failure {
  std::string code;  // ERR_INVALID_ARG, ERR_DISPOSED, ERR_TORCH, ERR_OUT_OF_MEMORY, ERR_NATIVE
  std::string message;
};

// Classifies the exception being handled; call it only inside a catch block.
Failure classifyCurrentException() noexcept;

}  // namespace difftune
