// Q4_K weights against x rounded to int8 per 32 values (shaders/include/x8.glsl): the per-unit
// dot of the int8-dot decode matvecs (shaders/matvec_wide.comp MODE 3 and 4,
// shaders/matvec_gate_up.comp), so that they cannot drift apart.
// A unit is one quarter c of a 256-value block: quant bytes 32 c .. 32 c + 31, whose low nibbles
// are sub-block 2 c and high nibbles sub-block 2 c + 1. Define USE_INT_DOT for OpSDot
// (SPV_KHR_integer_dot_product, DeviceCaps::int8_dot); otherwise plain integer math.
#if defined(USE_INT_DOT)
#extension GL_EXT_spirv_intrinsics : require
// OpSDotKHR (4450) on two packed 4 x int8 (literal PackedVectorFormat4x8Bit = 0); capabilities
// DotProductKHR (6019) and DotProductInput4x8BitPackedKHR (6018). Debian 12's glslang lacks
// GL_EXT_integer_dot_product, so the instruction is declared directly.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4450) int sdot_4x8_packed(uint a, uint b, spirv_literal uint format);
int dot_4x8(uint a, uint b) { return sdot_4x8_packed(a, b, 0); }
#else
int dot_4x8(uint a, uint b) {  // both operands: 4 signed bytes
  const ivec4 va = ivec4(a << 24, a << 16, a << 8, a) >> 24;
  const ivec4 vb = ivec4(b << 24, b << 16, b << 8, b) >> 24;
  return va.x * vb.x + va.y * vb.y + va.z * vb.z + va.w * vb.w;
}
#endif

// Scales and mins (sc_lo, sc_hi, min_lo, min_hi) of sub-blocks 2 c and 2 c + 1 from the 12 scale
// bytes s (ggml get_scale_min_k4, two sub-blocks at a time).
uvec4 scales_mins(uvec3 s, uint c) {
  uint sc, mn;  // sub-block 2 c in bits 0..7, 2 c + 1 in bits 8..15
  if (c < 2u) {
    const uint sh = 16u * c;
    sc = (s.x >> sh) & 0x3F3Fu;
    mn = (s.y >> sh) & 0x3F3Fu;
  } else {
    const uint sh = 16u * (c - 2u);
    sc = ((s.z >> sh) & 0x0F0Fu) | (((s.x >> sh) >> 2) & 0x3030u);
    mn = (((s.z >> sh) >> 4) & 0x0F0Fu) | (((s.y >> sh) >> 2) & 0x3030u);
  }
  return uvec4(sc & 0xFFu, sc >> 8, mn & 0xFFu, mn >> 8);
}

// The unit's contribution to one row: hd = the block head (d, dmin, 12 scale bytes), qa / qb its
// two 16-byte quant loads, ql / qh the int8 x of the two sub-blocks with their dx and fp32 sums.
// y += d (sc_lo dx_lo sum(q xq) + sc_hi dx_hi ...) - dmin (m_lo sum(x_lo) + m_hi sum(x_hi)).
float q4k_unit_dot(uvec4 hd, uvec4 qa, uvec4 qb, uint c, uint ql[8], uint qh[8], float dxl,
                   float dxh, float sl, float sh) {
  const uvec4 sm = scales_mins(hd.yzw, c);
  const vec2 dm = unpackHalf2x16(hd.x);
  int il = 0, ih = 0;  // |sum| <= 32 * 15 * 127: sc * sum is exact in fp32
  [[unroll]] for (uint w = 0; w < 8u; ++w) {
    const uint q = w < 4u ? qa[w] : qb[w - 4u];
    il += dot_4x8(q & 0x0F0F0F0Fu, ql[w]);
    ih += dot_4x8((q >> 4) & 0x0F0F0F0Fu, qh[w]);
  }
  return dm.x * (float(int(sm.x) * il) * dxl + float(int(sm.y) * ih) * dxh) -
         dm.y * (float(sm.z) * sl + float(sm.w) * sh);
}
