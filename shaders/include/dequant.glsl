// Weight access for every weight DType, ggml block layouts (shaders/include). Include after
// common.glsl with exactly one W_<TYPE> defined and W_BINDING set to the weight binding index.
// Declares the weight buffer and:
//   uint w_row_base(uint row, uint k)      first storage element of row `row` of a [*, k] matrix
//   vec4 w_load4(uint base, uint kk, uint k) values kk..kk+3 of that row (kk % 4 == 0); plain
//                                            types return 0 past k, block types need kk + 4 <= k
// Block types are read as uint16 (every block size is even; the tensor offset is 256-aligned).
// Math mirrors runtime/cpu/dequant.cpp: (d * scale) * q - (dmin * min), in fp32.

#if defined(W_F32)
layout(std430, binding = W_BINDING) readonly buffer WBuf { float w[]; };
uint w_row_base(uint row, uint k) { return row * k; }
vec4 w_load4(uint base, uint kk, uint k) {
  vec4 v;
  [[unroll]] for (uint i = 0; i < 4; ++i) v[i] = kk + i < k ? w[base + kk + i] : 0.0;
  return v;
}
#elif defined(W_F16)
layout(std430, binding = W_BINDING) readonly buffer WBuf { float16_t w[]; };
uint w_row_base(uint row, uint k) { return row * k; }
vec4 w_load4(uint base, uint kk, uint k) {
  vec4 v;
  [[unroll]] for (uint i = 0; i < 4; ++i) v[i] = kk + i < k ? float(w[base + kk + i]) : 0.0;
  return v;
}
#elif defined(W_BF16)
layout(std430, binding = W_BINDING) readonly buffer WBuf { uint16_t w[]; };
uint w_row_base(uint row, uint k) { return row * k; }
vec4 w_load4(uint base, uint kk, uint k) {
  vec4 v;
  [[unroll]] for (uint i = 0; i < 4; ++i) v[i] = kk + i < k ? bf16_to_f32(uint(w[base + kk + i])) : 0.0;
  return v;
}
#else
// ---- block-quantised types: w[] in uint16 units, block = BLOCK_HALFS halves ----
layout(std430, binding = W_BINDING) readonly buffer WBuf { uint16_t w[]; };
#if defined(W_Q8_0)
#define BLOCK_ELEMS 32
#define BLOCK_HALFS 17
#elif defined(W_Q4_0)
#define BLOCK_ELEMS 32
#define BLOCK_HALFS 9
#elif defined(W_Q4_1)
#define BLOCK_ELEMS 32
#define BLOCK_HALFS 10
#elif defined(W_Q5_0)
#define BLOCK_ELEMS 32
#define BLOCK_HALFS 11
#elif defined(W_Q5_1)
#define BLOCK_ELEMS 32
#define BLOCK_HALFS 12
#elif defined(W_Q4_K)
#define BLOCK_ELEMS 256
#define BLOCK_HALFS 72
#elif defined(W_Q5_K)
#define BLOCK_ELEMS 256
#define BLOCK_HALFS 88
#elif defined(W_Q6_K)
#define BLOCK_ELEMS 256
#define BLOCK_HALFS 105
#else
#error "dequant.glsl: define one W_<TYPE>"
#endif

uint w_row_base(uint row, uint k) { return row * (k / BLOCK_ELEMS) * BLOCK_HALFS; }
float w_half(uint h) { return unpackHalf2x16(uint(w[h])).x; }  // fp16 at uint16 index h
// Byte `i` of the block starting at uint16 index b.
uint w_byte(uint b, uint i) { return (uint(w[b + (i >> 1)]) >> ((i & 1) * 8)) & 0xFF; }
// Four bytes i..i+3 (i even) as one little-endian uint.
uint w_u32(uint b, uint i) { return uint(w[b + (i >> 1)]) | (uint(w[b + (i >> 1) + 1]) << 16); }
vec4 nibbles(uint q4, uint shift) {  // 4 packed bytes -> their low (shift 0) or high (4) nibbles
  return vec4(uvec4(q4, q4 >> 8, q4 >> 16, q4 >> 24) >> shift & 0xF);
}

#if defined(W_Q4_K) || defined(W_Q5_K)
// 6-bit scale and min of sub-block j (0..7) from the 12 scale bytes at byte 4 (ggml get_scale_min_k4).
vec2 scale_min_k4(uint b, uint j) {
  if (j < 4) return vec2(w_byte(b, 4 + j) & 63, w_byte(b, 8 + j) & 63);
  uint hi = w_byte(b, 8 + j);
  return vec2((hi & 0xF) | ((w_byte(b, j) >> 6) << 4), (hi >> 4) | ((w_byte(b, j + 4) >> 6) << 4));
}
#endif

vec4 w_load4(uint base, uint kk, uint k) {
  uint b = base + (kk / BLOCK_ELEMS) * BLOCK_HALFS;
  uint j = kk % BLOCK_ELEMS;
#if defined(W_Q8_0)
  uint q = w_u32(b, 2 + j);
  return w_half(b) * vec4(ivec4(q << 24, q << 16, q << 8, q) >> 24);
#elif defined(W_Q4_0)
  return w_half(b) * (nibbles(w_u32(b, 2 + (j & 15)), (j >> 4) * 4) - 8.0);
#elif defined(W_Q4_1)
  return w_half(b) * nibbles(w_u32(b, 4 + (j & 15)), (j >> 4) * 4) + w_half(b + 1);
#elif defined(W_Q5_0) || defined(W_Q5_1)
#if defined(W_Q5_0)
  const uint qh_at = 2;
#else
  const uint qh_at = 4;
#endif
  vec4 q = nibbles(w_u32(b, qh_at + 4 + (j & 15)), (j >> 4) * 4);
  uint qh = w_u32(b, qh_at) >> j;
  q += vec4(uvec4(qh, qh >> 1, qh >> 2, qh >> 3) & 1) * 16.0;
#if defined(W_Q5_0)
  return w_half(b) * (q - 16.0);
#else
  return w_half(b) * q + w_half(b + 1);
#endif
#elif defined(W_Q4_K) || defined(W_Q5_K)
  uint c = j / 64, h = (j / 32) & 1, l = j & 31;
  vec2 sm = scale_min_k4(b, 2 * c + h);
  float d1 = w_half(b) * sm.x, m1 = w_half(b + 1) * sm.y;
#if defined(W_Q4_K)
  vec4 q = nibbles(w_u32(b, 16 + 32 * c + l), 4 * h);
#else
  vec4 q = nibbles(w_u32(b, 48 + 32 * c + l), 4 * h);
  uint qh = w_u32(b, 16 + l) >> (2 * c + h);
  q += vec4(uvec4(qh, qh >> 8, qh >> 16, qh >> 24) & 1) * 16.0;
#endif
  return d1 * q - m1;
#elif defined(W_Q6_K)
  uint hf = j / 128, quad = (j / 32) & 3, l = j & 31;
  vec4 lo = nibbles(w_u32(b, 64 * hf + l + 32 * (quad & 1)), 4 * (quad >> 1));
  uint qh = w_u32(b, 128 + 32 * hf + l) >> (2 * quad);
  vec4 hi = vec4(uvec4(qh, qh >> 8, qh >> 16, qh >> 24) & 3);
  int sc = (int(w_byte(b, 192 + 8 * hf + l / 16 + 2 * quad)) << 24) >> 24;
  return w_half(b + 104) * float(sc) * (lo + hi * 16.0 - 32.0);
#endif
}
#endif
