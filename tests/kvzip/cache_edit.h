// Rewrites a KVZCACHE file with an edited JSON header and a valid checksum (tests/kvzip): the
// loader's checks past the checksum are reached only by files whose checksum is right.
#pragma once

#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kvzip/checksum.h"

namespace kvz::test {

// `edit_header` changes the header; `edit_payload` the bytes after it (rows, scores) in place.
inline void edit_cache_file(const std::string& path,
                            const std::function<void(nlohmann::json&)>& edit_header,
                            const std::function<void(std::vector<uint8_t>&)>& edit_payload = {}) {
  std::vector<uint8_t> b;
  {
    std::ifstream f(path, std::ios::binary);
    b.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  uint64_t hlen = 0;
  std::memcpy(&hlen, b.data() + 12, 8);
  nlohmann::json h =
      nlohmann::json::parse(b.begin() + 20, b.begin() + 20 + static_cast<long>(hlen));
  std::vector<uint8_t> payload(b.begin() + 20 + static_cast<long>(hlen), b.end() - 8);
  if (edit_header) edit_header(h);
  if (edit_payload) edit_payload(payload);
  const std::string hs = h.dump();
  std::vector<uint8_t> out(b.begin(), b.begin() + 12);
  const uint64_t n = hs.size();
  out.insert(out.end(), reinterpret_cast<const uint8_t*>(&n),
             reinterpret_cast<const uint8_t*>(&n) + 8);
  out.insert(out.end(), hs.begin(), hs.end());
  out.insert(out.end(), payload.begin(), payload.end());
  const uint64_t sum = fnv1a64(out.data(), out.size());
  out.insert(out.end(), reinterpret_cast<const uint8_t*>(&sum),
             reinterpret_cast<const uint8_t*>(&sum) + 8);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
}

}  // namespace kvz::test
