// Error types and invariant checks shared by every layer (runtime/, bottom of the stack).
// Programmer errors abort through KVZ_CHECK; environment and input failures throw kvz::Error.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace kvz {

// Base of every recoverable failure the library reports. tools/ mains catch it and print what().
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// No usable device, missing feature, device lost, a failed Vulkan call (carries the op name).
class DeviceError : public Error {
 public:
  using Error::Error;
};

// Truncated, corrupt or unsupported file (model, tokenizer, cache file); names file/key/offset.
class FormatError : public Error {
 public:
  using Error::Error;
};

// Device or host allocation failed. Recoverable on purpose: callers may raise the compression
// ratio (keep fewer KV pairs) and retry.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

// A user-supplied value is out of range (ratio, context length, unknown option value).
class InputError : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond,
                               const std::string& msg);
}  // namespace detail

}  // namespace kvz

// Broken invariant: prints file:line, the condition and an optional fmt message, then aborts.
#define KVZ_CHECK(cond, ...)                                                     \
  do {                                                                           \
    if (!(cond)) [[unlikely]]                                                    \
      ::kvz::detail::check_failed(__FILE__, __LINE__, #cond,                     \
                                  ::fmt::format("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)

#ifdef NDEBUG
#define KVZ_DCHECK(cond, ...) \
  do {                        \
  } while (0)
#else
#define KVZ_DCHECK(cond, ...) KVZ_CHECK(cond __VA_OPT__(, ) __VA_ARGS__)
#endif
