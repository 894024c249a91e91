// The 6-bit scales and mins of a Q4_K/Q5_K block (runtime/cpu): shared by the two unpackers of
// runtime/cpu/qdot_hwy.cpp (per-16 float scales) and qdot_k_hwy.cpp (integer scales).
#pragma once

#include <cstdint>
#include <cstring>

namespace kvz::cpu {

// The 8 6-bit scales (out[0..7]) and mins (out[8..15]) of a Q4_K/Q5_K block's 12 scale bytes
// (ggml get_scale_min_k4, four at a time through 32-bit words).
inline void scales_mins_k4(const uint8_t* q, uint8_t* out) {
  uint32_t u[4];
  std::memcpy(u, q, 12);
  constexpr uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
  u[3] = ((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4);  // mins 4..7
  const uint32_t m03 = u[1] & k6;                         // mins 0..3
  u[1] = (u[2] & k4) | (((u[0] >> 6) & k2) << 4);         // scales 4..7
  u[2] = m03;
  u[0] &= k6;  // scales 0..3
  std::memcpy(out, u, 16);
}

}  // namespace kvz::cpu
