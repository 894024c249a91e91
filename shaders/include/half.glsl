// f32 -> f16 bits with round-to-nearest-even done in integer math (shaders/include). Vulkan leaves
// the rounding of float16_t(x) implementation-defined (RTE or RTZ), so kernels that must match
// the CPU reference bit for bit (runtime/cpu/half.h) use this instead. Same algorithm as there.

uint f32_to_f16_bits(float f) {
  uint x = floatBitsToUint(f);
  uint sgn = (x >> 16) & 0x8000u;
  uint a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return sgn | 0x7c00u | (a > 0x7f800000u ? (0x200u | ((a >> 13) & 0x3ffu)) : 0u);
  uint e = a >> 23;
  if (e >= 113u) {
    uint h = (a >> 13) - (112u << 10);
    uint rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0u)) ++h;
    return sgn | min(h, 0x7c00u);
  }
  if (e < 102u) return sgn;
  uint m = (a & 0x7fffffu) | 0x800000u;
  uint shift = 126u - e;
  uint h = m >> shift;
  uint rem = m & ((1u << shift) - 1u);
  uint hlf = 1u << (shift - 1u);
  if (rem > hlf || (rem == hlf && (h & 1u) != 0u)) ++h;
  return sgn | h;
}
