// Exact scalar conversions between f32 and the 16-bit float formats f16 (IEEE binary16) and bf16
// (runtime/cpu; header-only, used by CPU references, uploads and tests). Narrowing rounds to
// nearest, ties to even; overflow gives infinity; NaN stays NaN (quieted, sign kept); f16
// subnormals are produced and read exactly.
#pragma once

#include <bit>
#include <cstdint>

namespace kvz::cpu {

inline uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u)  // inf or NaN: keep the top payload bits, force quiet for NaN
    return static_cast<uint16_t>(sign | 0x7c00u |
                                 (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u));
  const uint32_t e = a >> 23;  // biased f32 exponent
  if (e >= 113) {              // f16 normal range (or overflow)
    uint32_t h = (a >> 13) - (112u << 10);
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry may step to inf: correct
    if (h > 0x7c00u) h = 0x7c00u;
    return static_cast<uint16_t>(sign | h);
  }
  if (e < 102) return static_cast<uint16_t>(sign);  // below half the smallest subnormal
  // Subnormal f16: value / 2^-24 = m * 2^(e - 126), with the implicit bit in m.
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1u))) ++h;  // may become 0x400, the smallest normal
  return static_cast<uint16_t>(sign | h);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {  // zero or subnormal: m * 2^-24 is exact in f32
    const float v = static_cast<float>(m) * 0x1p-24f;
    return sign ? -v : v;
  }
  if (e == 31) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}

// Same result as f16_to_f32, branch-free so that loops over it vectorise: the 15 magnitude bits
// shifted into place and rebiased (15 -> 127); inf/NaN get the exponent 255; a subnormal m is
// built as 2^-14 * (1 + m / 1024) and 2^-14 subtracted, which leaves m * 2^-24 exactly.
inline float f16_to_f32_branchless(uint16_t h) {
  const uint32_t em = static_cast<uint32_t>(h & 0x7fffu) << 13;
  const uint32_t e = em & 0x0f800000u;
  uint32_t u = em + ((127u - 15u) << 23);
  u = e == 0x0f800000u ? u + ((128u - 16u) << 23) : u;
  u = e == 0 ? u + (1u << 23) : u;
  float f = std::bit_cast<float>(u);
  f = e == 0 ? f - std::bit_cast<float>(113u << 23) : f;
  return std::bit_cast<float>(std::bit_cast<uint32_t>(f) |
                              (static_cast<uint32_t>(h & 0x8000u) << 16));
}

inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bf16_to_f32(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

}  // namespace kvz::cpu
