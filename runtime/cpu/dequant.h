// Scalar GGUF/ggml block dequantisation and fp16/bf16 helpers for the CPU backend (runtime/cpu).
// Block layouts (bytes, little-endian, d/dmin are IEEE fp16), exactly as ggml-common.h:
//   q8_0 34: d, int8 qs[32]                      q4_0 18: d, qs[16] (lo nibbles = 0..15)
//   q4_1 20: d, m, qs[16]                        q5_0 22: d, qh u32, qs[16]
//   q5_1 24: d, m, qh u32, qs[16]
//   q4_k 144: d, dmin, scales[12] (8 x 6-bit scale/min), qs[128]
//   q5_k 176: d, dmin, scales[12], qh[32], qs[128]
//   q6_k 210: ql[128], qh[64], int8 scales[16], d
#pragma once

#include <cstdint>
#include <cstring>

#include "runtime/dtype.h"

namespace kvz::cpu {

// Exact IEEE half -> float (subnormals, inf and NaN preserved).
float f16_to_f32(uint16_t h);
// Round-to-nearest-even float -> half.
uint16_t f32_to_f16(float f);
inline float bf16_to_f32(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Dequantises n values (a multiple of the block size) of type t from src into dst (ggml layout).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Dequantises rows [row0, row0 + n_rows) of a [*, k] weight matrix into dst [n_rows, k] f32.
void dequantize_rows(DType t, const void* w, int64_t k, int64_t row0, int64_t n_rows, float* dst);

}  // namespace kvz::cpu
