// KVZ_CHECK failure path (runtime/).
#include "runtime/error.h"

#include <cstdio>
#include <cstdlib>

namespace kvz::detail {

void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, cond, msg.empty() ? "" : ": ",
               msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace kvz::detail
