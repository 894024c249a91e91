// Random weights of any DType for the runtime tests: plain types uniform, block types random
// bytes with moderate fp16 scales (tests/common).
#pragma once

#include <cstring>
#include <vector>

#include "runtime/cpu/dequant.h"
#include "runtime/dtype.h"
#include "runtime/tensor.h"
#include "tests/common/test_device.h"

namespace kvz::test {

// Byte offsets of the fp16 scale fields in a block (kept finite and moderate in random data).
inline std::vector<int> scale_offsets(DType t) {
  switch (t) {
    case DType::kQ4_1:
    case DType::kQ5_1:
    case DType::kQ4_K:
    case DType::kQ5_K:
      return {0, 2};
    case DType::kQ6_K:
      return {208};
    default:
      return {0};
  }
}

// Random [n, k] weights of type t: plain types from uniform(-1, 1), block types as random bytes
// with fp16 scales in +-[0.002, 0.05] (magnitudes like real checkpoints, no inf/NaN/subnormal).
inline std::vector<uint8_t> random_weights(DType t, int64_t n, int64_t k, Rng& rng) {
  std::vector<uint8_t> raw(row_bytes(t, k) * size_t(n));
  if (!is_quantized(t)) {
    for (size_t i = 0; i < raw.size() / dtype_info(t).block_bytes; ++i) {
      float v = rng.uniform();
      uint32_t u;
      std::memcpy(&u, &v, 4);
      if (t == DType::kF32) std::memcpy(&raw[4 * i], &v, 4);
      if (t == DType::kF16) {
        uint16_t h = cpu::f32_to_f16(v);
        std::memcpy(&raw[2 * i], &h, 2);
      }
      if (t == DType::kBF16) {
        uint16_t h = uint16_t(u >> 16);
        std::memcpy(&raw[2 * i], &h, 2);
      }
    }
    return raw;
  }
  for (auto& b : raw) b = uint8_t(rng.next());
  const int bb = dtype_info(t).block_bytes;
  for (size_t blk = 0; blk < raw.size() / bb; ++blk)
    for (int off : scale_offsets(t)) {
      float d = rng.uniform(0.002f, 0.05f) * (rng.next() & 1 ? 1.0f : -1.0f);
      uint16_t h = cpu::f32_to_f16(d);
      std::memcpy(&raw[blk * bb + off], &h, 2);
    }
  return raw;
}

}  // namespace kvz::test
