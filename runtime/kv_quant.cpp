// KV cache storage types: names, sizes and the host quantisers (runtime/).
#include "runtime/kv_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/cpu/dequant.h"
#include "runtime/error.h"

namespace kvz {

bool is_kv_cache_type(DType t) {
  return t == DType::kF16 || t == DType::kQ8_0 || t == DType::kQ4_0;
}

DType kv_cache_type_from_name(std::string_view name, std::string_view what) {
  const DType t = dtype_from_name(name);
  if (!is_kv_cache_type(t))
    throw InputError(
        fmt::format("{}: unknown KV cache type '{}' (use f16, q8_0 or q4_0)", what, name));
  return t;
}

size_t kv_row_bytes(DType t, int64_t head_dim) {
  KVZ_CHECK(is_kv_cache_type(t), "KV cache type {}", dtype_name(t));
  KVZ_CHECK(t == DType::kF16 || head_dim % 32 == 0,
            "KV cache type {} needs head_dim % 32 == 0, got {}", dtype_name(t), head_dim);
  return row_bytes(t, head_dim);
}

uint32_t kv_type_code(DType t) {
  switch (t) {
    case DType::kQ8_0:
      return 1;
    case DType::kQ4_0:
      return 2;
    default:
      KVZ_CHECK(t == DType::kF16, "KV cache type {}", dtype_name(t));
      return 0;
  }
}

double kv_block_error_bound(DType t, float d) {
  const double ad = std::fabs(double(d));
  const double scale_err = 0x1p-11 * ad * (1 + 0x1p-10);  // |true d - d| <= half an f16 ulp
  switch (t) {
    case DType::kQ8_0:
      return 0.5 * ad + 128 * scale_err;
    case DType::kQ4_0:
      return ad + 8 * scale_err;
    default:
      return 0.0;
  }
}

namespace cpu {

void quantize_kv_row(DType t, const float* x, void* dst, int64_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  auto put_d = [](uint8_t* b, float d) {
    const uint16_t h = f32_to_f16(d);
    std::memcpy(b, &h, 2);
  };
  if (t == DType::kF16) {
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = f32_to_f16(x[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
    return;
  }
  KVZ_CHECK(n % 32 == 0 && (t == DType::kQ8_0 || t == DType::kQ4_0), "quantize_kv_row: {} x {}", n,
            dtype_name(t));
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* v = x + b * 32;
    if (t == DType::kQ8_0) {
      uint8_t* blk = out + b * 34;
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
      const float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
      put_d(blk, d);
      for (int j = 0; j < 32; ++j)
        blk[2 + j] = static_cast<uint8_t>(int8_t(std::roundf(v[j] * id)));
    } else {
      uint8_t* blk = out + b * 18;
      float amax = 0, max = 0;
      for (int j = 0; j < 32; ++j)
        if (amax < std::fabs(v[j])) amax = std::fabs(v[j]), max = v[j];
      const float d = max / -8, id = d != 0 ? 1.0f / d : 0.0f;
      put_d(blk, d);
      for (int j = 0; j < 16; ++j) {
        const int q0 = std::min(15, int(int8_t(v[j] * id + 8.5f)));
        const int q1 = std::min(15, int(int8_t(v[16 + j] * id + 8.5f)));
        blk[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
      }
    }
  }
}

void dequantize_kv_row(DType t, const void* src, float* dst, int64_t n) {
  KVZ_CHECK(is_kv_cache_type(t), "dequantize_kv_row: {}", dtype_name(t));
  dequantize_row(t, src, dst, n);
}

}  // namespace cpu
}  // namespace kvz
