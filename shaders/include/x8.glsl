// x rounded to int8 per 32 values (q8_1-style) for the int8-dot Q4_K matvec
// (shaders/matvec_wide.comp MODE 3 and 4), written by shaders/quantize_x8.comp and fused into
// shaders/rms_norm.comp and shaders/gated_act.comp (variants x8): one rounding, so that they
// cannot drift apart.
// Scratch layout of quantize_x8 (uint words, k % 256 == 0):
//   [0, k / 4)                    int8 values 4 i .. 4 i + 3, first in the low byte
//   [k / 4 + 2 g], [.. + 2 g + 1] dx_g and the fp32 sum of x over group g (32 values), float bits
// so the four floats (dx, sum) of groups 2 j and 2 j + 1 are one uvec4 at index k / 16 + j.
// Define X8_LOAD before including for quantise_32 (needs the f32 x buffer as vec4 x4[]), X8_STORE
// for x8_store (needs the x8 buffer as uvec4 xq4[] and vec2 xds[], both at the same binding).

// 32 x values xv as int8 round(x / dx), dx = amax / 127, packed 4 per uint (first value in the
// low byte); s = their fp32 sum. Rounding adds 1.5 * 2^23: the low byte of the sum's bits is then
// the rounded value in two's complement (|x / dx| <= 127 < 2^22).
void x8_round_32(vec4 xv[8], out uint q[8], out float dx, out float s) {
  float amax = 0.0;
  s = 0.0;
  [[unroll]] for (uint i = 0; i < 8u; ++i) {
    const vec4 a = abs(xv[i]);
    amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
    s += dot(xv[i], vec4(1.0));
  }
  dx = amax / 127.0;
  const float inv = amax > 0.0 ? 127.0 / amax : 0.0;
  [[unroll]] for (uint i = 0; i < 8u; ++i) {
    const uvec4 b = floatBitsToUint(xv[i] * inv + 12582912.0) & 0xFFu;
    q[i] = b.x | (b.y << 8) | (b.z << 16) | (b.w << 24);
  }
}

#ifdef X8_LOAD
// x values 4 v0 .. 4 v0 + 31 of x4, rounded by x8_round_32.
void quantise_32(uint v0, out uint q[8], out float dx, out float s) {
  vec4 xv[8];
  [[unroll]] for (uint i = 0; i < 8u; ++i) xv[i] = x4[v0 + i];
  x8_round_32(xv, q, dx, s);
}
#endif

#ifdef X8_STORE
// Group g (values 32 g .. 32 g + 31) of an x8 scratch for k values, in the layout above.
void x8_store(uint g, uint k, uint q[8], float dx, float s) {
  xq4[2u * g] = uvec4(q[0], q[1], q[2], q[3]);
  xq4[2u * g + 1u] = uvec4(q[4], q[5], q[6], q[7]);
  xds[k / 8u + g] = vec2(dx, s);
}
#endif
