// FNV-1a 64-bit checksum of the kvzip/ file formats (cache files, KVzap weights files).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvz {

inline uint64_t fnv1a64(const uint8_t* p, size_t n, uint64_t h = 1469598103934665603ull) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace kvz
