#include "tensor/failure.h"

#include <c10/util/Exception.h>

#include <exception>
#include <new>

namespace difftune {

Failure classifyCurrentException() noexcept {
  try {
    throw;
  } catch (const InvalidArgument& e) {
    return {"ERR_INVALID_ARG", e.what()};
  } catch (const Disposed& e) {
    return {"ERR_DISPOSED", e.what()};
  } catch (const c10::OutOfMemoryError& e) {
    return {"ERR_OUT_OF_MEMORY", std::string("out of memory: ") + e.what_without_backtrace()};
  } catch (const c10::Error& e) {
    // what() appends a C++ backtrace that means nothing to a JS user; the message alone is enough.
    return {"ERR_TORCH", e.what_without_backtrace()};
  } catch (const std::bad_alloc&) {
    return {"ERR_OUT_OF_MEMORY", "out of memory: a host allocation failed (std::bad_alloc)"};
  } catch (const std::exception& e) {
    return {"ERR_NATIVE", e.what()};
  } catch (...) {
    return {"ERR_NATIVE", "unknown native exception"};
  }
}

}  // namespace difftune
