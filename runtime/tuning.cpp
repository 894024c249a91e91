#include "runtime/tuning.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string_view>

namespace kvz {

bool env_flag(const char* name) {
  const char* e = std::getenv(name);
  return e && *e && std::string_view(e) != "0";
}

uint32_t env_u32(const char* name) {
  const std::vector<uint32_t> v = env_u32_list(name);
  return v.size() == 1 ? v[0] : 0u;
}

uint32_t env_pick(const char* name, std::initializer_list<uint32_t> allowed, uint32_t fallback) {
  const std::vector<uint32_t> v = env_u32_list(name);
  return v.size() == 1 && std::find(allowed.begin(), allowed.end(), v[0]) != allowed.end()
             ? v[0]
             : fallback;
}

std::vector<uint32_t> env_u32_list(const char* name) {
  const char* e = std::getenv(name);
  std::vector<uint32_t> out;
  if (!e) return out;
  std::string_view s(e);
  while (!s.empty()) {
    const size_t comma = s.find(',');
    const std::string_view item = s.substr(0, comma);
    uint32_t v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || end != item.data() + item.size()) return {};
    out.push_back(v);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace kvz
