#include "tensor/failure.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>

namespace difftune {

namespace {

// "1.2 GB": decimal units, as disk and RAM sizes are sold; the exact count follows in parentheses.
std::string humanBytes(double bytes) {
  static const char* const units[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
  int unit = 0;
  while (bytes >= 1000 && unit < 6) {
    bytes /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return text;
}

// libtorch's own context lines (add_context: "while ..."), which name the operation where one was recorded.
std::string contextText(const c10::Error& e) {
  std::string out;
  for (const std::string& line : e.context()) out += (out.empty() ? " (" : "; ") + line;
  return out.empty() ? out : out + ")";
}

// The clean out-of-memory message for a libtorch allocator failure, or "" when `message` is not one.
// The CPU allocator (c10/core/impl/alloc_cpu.cpp, 1.13 and 2.x) raises a plain c10::Error through
// CAFFE_ENFORCE: "[enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: can't allocate
// memory: you tried to allocate 123 bytes. Error code 12 (Cannot allocate memory)" (or "not enough
// memory: you tried to allocate 123 bytes."), or difftune's cache (tensor/cpu_allocator.cc). The CUDA caching allocator raises
// c10::OutOfMemoryError: "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.69 GiB total capacity; ...)".
std::string allocationFailure(const std::string& message) {
  for (const char* marker : {"DefaultCPUAllocator: can't allocate memory: you tried to allocate ",
                             "DefaultCPUAllocator: not enough memory: you tried to allocate ",
                             "difftune CPU cache: cannot map memory: you tried to allocate "}) {
    size_t at = message.find(marker);
    if (at == std::string::npos) continue;
    size_t from = at + std::char_traits<char>::length(marker);
    size_t to = message.find_first_not_of("0123456789", from);
    std::string count = message.substr(from, to == std::string::npos ? std::string::npos : to - from);
    if (count.empty()) continue;
    double bytes = std::strtod(count.c_str(), nullptr);
    std::string size = bytes < 1000 ? count + " bytes" : humanBytes(bytes) + " (" + count + " bytes)";
    return "out of memory: could not allocate " + size + " on the CPU";
  }
  const std::string cuda = "CUDA out of memory. Tried to allocate ";
  size_t at = message.find(cuda);
  if (at == std::string::npos) return "";
  // "2.00 GiB", then the allocator's report: "(GPU 0; ...)" in 1.13, ". GPU 0 has a total capacity ..." in 2.x.
  size_t from = at + cuda.size();
  size_t space = message.find(' ', from);
  size_t end = space == std::string::npos ? std::string::npos : message.find_first_of(" .", space + 1);
  std::string amount = message.substr(from, end == std::string::npos ? std::string::npos : end - from);
  size_t rest = end == std::string::npos ? std::string::npos : message.find_first_not_of(" .", end);
  return "out of memory: could not allocate " + amount + " on CUDA" + (rest == std::string::npos ? "" : ": " + message.substr(rest));
}

}  // namespace

Failure classifyCurrentException() noexcept {
  try {
    throw;
  } catch (const InvalidArgument& e) {
    return {"ERR_INVALID_ARG", e.what()};
  } catch (const Disposed& e) {
    return {"ERR_DISPOSED", e.what()};
  } catch (const c10::OutOfMemoryError& e) {
    // msg() is the message alone; what_without_backtrace() would repeat the context lines.
    std::string clean = allocationFailure(e.msg());
    return {"ERR_OUT_OF_MEMORY", (clean.empty() ? "out of memory: " + e.msg() : clean) + contextText(e)};
  } catch (const c10::Error& e) {
    // An allocator failure arrives as a plain c10::Error on the CPU: it is out of memory all the same,
    // and its "[enforce fail at alloc_cpu.cpp:75]" location means nothing to a JS user.
    std::string clean = allocationFailure(e.msg());
    if (!clean.empty()) return {"ERR_OUT_OF_MEMORY", clean + contextText(e)};
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
