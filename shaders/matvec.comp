#version 450
// matvec: y[n] = w[n, k] . x[k] (+ bias[n]) for decode (m == 1); w in any weight type. Each
// workgroup owns NR consecutive rows; threads stride over k four values at a time (dequantise +
// dot in fp32) and the partial sums are reduced in shared memory (or with subgroupAdd).
// Fast loops where the layout allows: f16/bf16 rows read 8 values (16 bytes) at a time when
// k % 8 == 0; Q4_K gives each block to 8 threads, each decoding its two scales once and 32
// values from one 16-byte load of quants (blocks are 144 bytes: 16-byte aligned).
// Q4_K variants (MatmulTuning::matvec_variant, KVZ_MATVEC_VARIANT): 0 that loop (the default),
// 1 the earlier mapping (below); 2 float, 3 and 4 int8 dot: shaders/matvec_wide.comp.
// Bindings: 0 x f32 [k] read | 1 w W_<TYPE> [n, k] read | 2 bias f32 [col0 + n] read (any buffer
//           when has_bias == 0) | 3 y f32 [col0 + n] write
// Push: m (== 1), n, k, has_bias, col0 (w may be a row chunk of a larger weight: it writes
//       y[col0, col0 + n)), ldy (unused).
// Spec: 0 = workgroup size (power of two; a multiple of the subgroup size with USE_SUBGROUP),
//       1 = NR rows per workgroup, 2 = Q4K_MAP (Q4_K thread mapping, see below).
// Grid: gx x gy x 1 with gx * gy >= ceil(n / NR) (row group = wg.y * gx + wg.x; gx <= 65535).
#include "common.glsl"
#if defined(USE_SUBGROUP)
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 2;
layout(constant_id = 2) const uint Q4K_MAP = 0;  // Q4_K fast loop: 0 contiguous lanes, 1 earlier

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
#define W_BINDING 1
#include "dequant.glsl"
#if defined(W_F16) || defined(W_BF16)
layout(std430, binding = 1) readonly buffer W8 { uvec4 w8[]; };  // 8 halves per element
#elif defined(W_Q4_K)
layout(std430, binding = 1) readonly buffer WQ { uvec4 wq4[]; };  // 9 per 256-value block
layout(std430, binding = 1) readonly buffer WQ1 { uint wq1[]; };  // 36 per block
vec4 bytes4(uint v) { return vec4(uvec4(v, v >> 8, v >> 16, v >> 24) & 0xFFu); }
#endif
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push {
  uint m;
  uint n;
  uint k;
  uint has_bias;
  uint col0;
  uint ldy;
} p;

#if defined(USE_SUBGROUP)
shared float partial[NR * 32];  // one slot per subgroup (>= 8 lanes, so <= 32 subgroups)
#else
shared float partial[NR * 1024];
#endif

void main() {
  const uint wg = gl_WorkGroupSize.x, tid = gl_LocalInvocationID.x;
  const uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * NR;
  if (row0 >= p.n) return;  // whole workgroup leaves together: no barrier divergence
  float acc[NR];
  uint base[NR];
  [[unroll]] for (uint r = 0; r < NR; ++r) {
    acc[r] = 0.0;
    base[r] = w_row_base(min(row0 + r, p.n - 1), p.k);  // clamped rows compute, never store
  }
#if defined(W_F16) || defined(W_BF16)
  if (p.k % 8u == 0u) {
    for (uint kk = tid * 8u; kk < p.k; kk += wg * 8u) {
      const vec4 xa = x4[kk / 4u], xb = x4[kk / 4u + 1u];
      [[unroll]] for (uint r = 0; r < NR; ++r) {
        const uvec4 b = w8[(base[r] + kk) / 8u];
#if defined(W_F16)
        acc[r] += dot(vec4(unpackHalf2x16(b.x), unpackHalf2x16(b.y)), xa) +
                  dot(vec4(unpackHalf2x16(b.z), unpackHalf2x16(b.w)), xb);
#else
        acc[r] += dot(vec4(bf16_pair(b.x), bf16_pair(b.y)), xa) +
                  dot(vec4(bf16_pair(b.z), bf16_pair(b.w)), xb);
#endif
      }
    }
  } else
#elif defined(W_Q4_K)
  if (wg % 8u == 0u && Q4K_MAP == 0u) {
    // Eight threads per block; thread e = t % 8 takes values 64 c + 4 e + i (low nibbles of
    // quant bytes 32 c + 4 e + i: sub-block 2 c) and 64 c + 32 + 4 e + i (their high nibbles:
    // sub-block 2 c + 1) for c < 4, i < 4. So the eight threads of a block read 128 contiguous
    // bytes of x per load and 32 contiguous quant bytes per u32 load (few cache lines per warp
    // instruction), and each thread decodes all 8 scales and mins of its blocks.
    const uint nb = p.k / 256u, bstep = wg / 8u, e = tid % 8u;
    for (uint blk = tid / 8u; blk < nb; blk += bstep) {
      vec4 xl[4], xh[4];
      float sl[4], sh[4];
      [[unroll]] for (uint c = 0; c < 4u; ++c) {
        xl[c] = x4[blk * 64u + 16u * c + e];
        xh[c] = x4[blk * 64u + 16u * c + 8u + e];
        sl[c] = dot(xl[c], vec4(1.0));
        sh[c] = dot(xh[c], vec4(1.0));
      }
      [[unroll]] for (uint r = 0; r < NR; ++r) {
        const uint b4 = base[r] / 8u + blk * 9u;  // uvec4 index of the block (144 bytes)
        const uvec4 hd = wq4[b4];                 // d, dmin | 12 scale bytes
        uint q[4];
        [[unroll]] for (uint c = 0; c < 4u; ++c) q[c] = wq1[b4 * 4u + 4u + 8u * c + e];
        const vec2 dm = unpackHalf2x16(hd.x);
        // ggml get_scale_min_k4 for all 8 sub-blocks, four bytes at a time.
        const uint sc_lo = hd.y & 0x3F3F3F3Fu, mn_lo = hd.z & 0x3F3F3F3Fu;
        const uint sc_hi = (hd.w & 0x0F0F0F0Fu) | ((hd.y >> 2) & 0x30303030u);
        const uint mn_hi = ((hd.w >> 4) & 0x0F0F0F0Fu) | ((hd.z >> 2) & 0x30303030u);
        const vec4 sc[2] = {bytes4(sc_lo), bytes4(sc_hi)}, mn[2] = {bytes4(mn_lo), bytes4(mn_hi)};
        float ad = 0.0, am = 0.0;
        [[unroll]] for (uint c = 0; c < 4u; ++c) {
          const float lo = dot(nibbles(q[c], 0u), xl[c]), hi = dot(nibbles(q[c], 4u), xh[c]);
          const uint j = 2u * c;  // sub-blocks j, j + 1: entries j % 4, j % 4 + 1 of half j / 4
          ad += sc[j / 4u][j % 4u] * lo + sc[j / 4u][j % 4u + 1u] * hi;
          am += mn[j / 4u][j % 4u] * sl[c] + mn[j / 4u][j % 4u + 1u] * sh[c];
        }
        acc[r] += dm.x * ad - dm.y * am;
      }
    }
  } else if (wg % 8u == 0u) {
    // The earlier mapping (MatmulTuning::matvec_variant 1, for comparison): thread t takes
    // eighth t % 8 of every (wg / 8)-th block: 16 quant bytes (one 16-byte load)
    // of chunk c = (t % 8) / 2 holding values 64 c + 16 q + i (low nibbles, sub-block 2 c) and
    // 64 c + 32 + 16 q + i (high nibbles, sub-block 2 c + 1), i < 16, q = t % 2.
    const uint c = (tid % 8u) / 2u, qq = tid % 2u, nb = p.k / 256u;
    const uint j0 = 2u * c, j1 = j0 + 1u;
    for (uint blk = tid / 8u; blk < nb; blk += wg / 8u) {
      const uint xo = blk * 64u + 16u * c + 4u * qq;  // vec4 index of value 64 c + 16 q
      vec4 xl[4], xh[4];
      [[unroll]] for (uint i = 0; i < 4u; ++i) xl[i] = x4[xo + i], xh[i] = x4[xo + 8u + i];
      const float sx_lo = dot(xl[0] + xl[1] + xl[2] + xl[3], vec4(1.0));
      const float sx_hi = dot(xh[0] + xh[1] + xh[2] + xh[3], vec4(1.0));
      [[unroll]] for (uint r = 0; r < NR; ++r) {
        const uint b4 = base[r] / 8u + blk * 9u;  // uvec4 index of the block (144 bytes)
        const uvec4 hd = wq4[b4];                 // d, dmin | 12 scale bytes
        const uvec4 qs = wq4[b4 + 1u + 2u * c + qq];
        const vec2 dm = unpackHalf2x16(hd.x);
        const uint s0 = hd.y, s1 = hd.z, s2 = hd.w;
        // ggml get_scale_min_k4 for j0 and j1 (scale bytes 0..11 in s0, s1, s2).
        vec2 sm0, sm1;
        if (c < 2u) {
          const uint sh0 = 8u * j0, sh1 = 8u * j1;
          sm0 = vec2((s0 >> sh0) & 63u, (s1 >> sh0) & 63u);
          sm1 = vec2((s0 >> sh1) & 63u, (s1 >> sh1) & 63u);
        } else {
          const uint sh0 = 8u * (j0 - 4u), sh1 = 8u * (j1 - 4u);
          sm0 = vec2(((s2 >> sh0) & 0xFu) | (((s0 >> sh0) >> 6u & 3u) << 4u),
                     ((s2 >> sh0) >> 4u & 0xFu) | (((s1 >> sh0) >> 6u & 3u) << 4u));
          sm1 = vec2(((s2 >> sh1) & 0xFu) | (((s0 >> sh1) >> 6u & 3u) << 4u),
                     ((s2 >> sh1) >> 4u & 0xFu) | (((s1 >> sh1) >> 6u & 3u) << 4u));
        }
        float lo = 0.0, hi = 0.0;
        [[unroll]] for (uint i = 0; i < 4u; ++i) {
          lo += dot(nibbles(qs[i], 0u), xl[i]);
          hi += dot(nibbles(qs[i], 4u), xh[i]);
        }
        acc[r] += dm.x * (sm0.x * lo + sm1.x * hi) - dm.y * (sm0.y * sx_lo + sm1.y * sx_hi);
      }
    }
  } else
#endif
  for (uint kk = tid * 4; kk < p.k; kk += wg * 4) {
    vec4 xv;
    [[unroll]] for (uint i = 0; i < 4; ++i) xv[i] = kk + i < p.k ? x[kk + i] : 0.0;
    [[unroll]] for (uint r = 0; r < NR; ++r) acc[r] += dot(w_load4(base[r], kk, p.k), xv);
  }
#if defined(USE_SUBGROUP)
  const uint n_sub = gl_NumSubgroups;
  [[unroll]] for (uint r = 0; r < NR; ++r) {
    float s = subgroupAdd(acc[r]);
    if (subgroupElect()) partial[r * 32 + gl_SubgroupID] = s;
  }
  barrier();
  if (tid < NR) {
    float s = 0.0;
    for (uint i = 0; i < n_sub; ++i) s += partial[tid * 32 + i];
    uint row = row0 + tid;
    if (row < p.n) y[p.col0 + row] = s + (p.has_bias != 0 ? bias[p.col0 + row] : 0.0);
  }
#else
  [[unroll]] for (uint r = 0; r < NR; ++r) partial[r * wg + tid] = acc[r];
  barrier();
  for (uint stride = wg / 2; stride > 0; stride /= 2) {
    if (tid < stride)
      [[unroll]] for (uint r = 0; r < NR; ++r) partial[r * wg + tid] += partial[r * wg + tid + stride];
    barrier();
  }
  if (tid < NR) {
    uint row = row0 + tid;
    if (row < p.n)
      y[p.col0 + row] = partial[tid * wg] + (p.has_bias != 0 ? bias[p.col0 + row] : 0.0);
  }
#endif
}
