#version 450
// matvec_wide: y[n] = w[n, k] . x[k] (+ bias[n]) for decode (m == 1) with Q4_K weights, giving
// each thread more work per load than shaders/matvec.comp: MatmulTuning::matvec_variant 2, 3, 4
// (runtime/ops/matmul.cpp; variants 0 and 1 are matvec.comp's Q4_K loops).
// Work unit: one quarter c of a 256-value block = quant bytes 32 c .. 32 c + 31, whose low nibbles
// are sub-block 2 c (values 64 c + i) and high nibbles sub-block 2 c + 1 (values 64 c + 32 + i),
// i < 32. Four threads per block; units are strided over the workgroup and each unit serves all NR
// rows of the workgroup: its 64 x values are read (as vec4) and prepared once, then per row one
// 16-byte load of the block head (d, dmin, 12 scale bytes), two 16-byte loads of quants and one
// decode of the unit's two scales and mins. Variant 0 spends one int-to-float conversion per
// weight (an eighth of the FMA rate on NVIDIA: the likely limit of its bandwidth, not confirmed by
// a profile); these spend none per weight:
//   MODE 2 (float): (q & 0xF << s) | 0x4B000000 is the float 2^23 + n 2^s (s in {0, 4, 8, 12},
//     after q >> 16 for bytes 2 and 3); minus 2^23 that is exactly n 2^s, and x is pre-scaled by
//     2^-s once per unit (exact). fp32 FMA; same rounding class as variant 0.
//   MODE 3 (int8 dot, q8_1-style): each unit quantises its 64 x values to int8 per 32 (dx =
//     amax / 127, round to nearest) and keeps their fp32 sums for the min term; per row each 4
//     quants take one 4 x int8 dot product: y += d (sc_lo dx_lo sum(q xq) + sc_hi dx_hi ...) -
//     dmin (m_lo sum(x_lo) + m_hi sum(x_hi)). USE_INT_DOT: OpSDot through
//     SPV_KHR_integer_dot_product (DeviceCaps::int8_dot); otherwise plain integer math. Differs
//     from fp32 by the rounding of x: at most amax_32 / 254 per x value.
//   MODE 4: MODE 3 with x rounded once per call by shaders/quantize_x8.comp (binding 0 is then
//     that x8 scratch, shaders/include/x8.glsl): no per-workgroup rounding work, same rounding.
// Bindings: 0 x f32 [k] (MODE 4: x8 u32 [k / 4 + k / 16]) read | 1 w Q4_K [n, k] read |
//           2 bias f32 [col0 + n] read (any buffer when has_bias == 0) | 3 y f32 [col0 + n] write
// Push: m (== 1), n, k (% 256 == 0), has_bias, col0 (w may be a row chunk of a larger weight: it
//       writes y[col0, col0 + n)), ldy (unused).
// Spec: 0 = workgroup size (a power of two >= 4; with USE_SUBGROUP a multiple of the subgroup
//       size), 1 = NR rows per workgroup, 2 = MODE (2 float, 3 int8 dot, 4 int8 dot on pre-rounded
//       x).
// Grid: gx x gy x 1 with gx * gy >= ceil(n / NR) (row group = wg.y * gx + wg.x; gx <= 65535).
#include "common.glsl"
#if !defined(W_Q4_K)
#error "matvec_wide: Q4_K only"
#endif
#if defined(USE_SUBGROUP)
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "q4k_x8.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 4;
layout(constant_id = 2) const uint MODE = 2;

layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 0) readonly buffer XQ4 { uvec4 xq4[]; };  // MODE 4: x8 (x8.glsl)
layout(std430, binding = 1) readonly buffer WQ { uvec4 wq4[]; };  // 9 per 256-value block
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

#define X8_LOAD
#include "x8.glsl"

#if defined(USE_SUBGROUP)
shared float partial[NR * 32];  // one slot per subgroup (>= 8 lanes, so <= 32 subgroups)
#else
shared float partial[NR * 1024];
#endif

float magic(uint bits) { return uintBitsToFloat(bits | 0x4B000000u) - 8388608.0; }

void main() {
  const uint wg = gl_WorkGroupSize.x, tid = gl_LocalInvocationID.x;
  const uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * NR;
  if (row0 >= p.n) return;  // whole workgroup leaves together: no barrier divergence
  const uint nb = p.k / 256u;
  float acc[NR];
  uint b0[NR];  // uvec4 index of each row's first block (144 bytes = 9 uvec4)
  [[unroll]] for (uint r = 0; r < NR; ++r) {
    acc[r] = 0.0;
    b0[r] = min(row0 + r, p.n - 1u) * nb * 9u;  // clamped rows compute, never store
  }
  for (uint u = tid; u < nb * 4u; u += wg) {
    const uint blk = u / 4u, c = u % 4u, xo = blk * 64u + 16u * c;  // vec4 index of value 64 c
    if (MODE == 2u) {
      vec4 xl[8], xh[8];  // pre-scaled by 2^-s of each value's nibble position
      float sl = 0.0, sh = 0.0;
      [[unroll]] for (uint w = 0; w < 8u; ++w) {
        const vec4 a = x4[xo + w], b = x4[xo + 8u + w];
        sl += dot(a, vec4(1.0));
        sh += dot(b, vec4(1.0));
        xl[w] = a * vec4(1.0, 1.0 / 256.0, 1.0, 1.0 / 256.0);
        xh[w] = b * vec4(1.0 / 16.0, 1.0 / 4096.0, 1.0 / 16.0, 1.0 / 4096.0);
      }
      [[unroll]] for (uint r = 0; r < NR; ++r) {
        const uint bq = b0[r] + blk * 9u;
        const uvec4 hd = wq4[bq], qa = wq4[bq + 1u + 2u * c], qb = wq4[bq + 2u + 2u * c];
        const vec4 sm = vec4(scales_mins(hd.yzw, c));
        const vec2 dm = unpackHalf2x16(hd.x);
        float lo = 0.0, hi = 0.0;
        [[unroll]] for (uint w = 0; w < 8u; ++w) {
          const uint q = w < 4u ? qa[w] : qb[w - 4u], q2 = q >> 16;
          lo += dot(vec4(magic(q & 0xFu), magic(q & 0xF00u), magic(q2 & 0xFu), magic(q2 & 0xF00u)),
                    xl[w]);
          hi += dot(vec4(magic(q & 0xF0u), magic(q & 0xF000u), magic(q2 & 0xF0u),
                         magic(q2 & 0xF000u)),
                    xh[w]);
        }
        acc[r] += dm.x * (sm.x * lo + sm.y * hi) - dm.y * (sm.z * sl + sm.w * sh);
      }
    } else {
      uint ql[8], qh[8];
      float dxl, dxh, sl, sh;
      if (MODE == 4u) {  // words xo .. xo + 15 of x8; (dx, sum) of groups 2 u, 2 u + 1
        [[unroll]] for (uint i = 0; i < 2u; ++i) {
          const uvec4 a = xq4[xo / 4u + i], b = xq4[xo / 4u + 2u + i];
          ql[4u * i] = a.x, ql[4u * i + 1u] = a.y, ql[4u * i + 2u] = a.z, ql[4u * i + 3u] = a.w;
          qh[4u * i] = b.x, qh[4u * i + 1u] = b.y, qh[4u * i + 2u] = b.z, qh[4u * i + 3u] = b.w;
        }
        const vec4 ds = uintBitsToFloat(xq4[p.k / 16u + u]);
        dxl = ds.x, sl = ds.y, dxh = ds.z, sh = ds.w;
      } else {
        quantise_32(xo, ql, dxl, sl);
        quantise_32(xo + 8u, qh, dxh, sh);
      }
      [[unroll]] for (uint r = 0; r < NR; ++r) {
        const uint bq = b0[r] + blk * 9u;
        acc[r] += q4k_unit_dot(wq4[bq], wq4[bq + 1u + 2u * c], wq4[bq + 2u + 2u * c], c, ql, qh,
                               dxl, dxh, sl, sh);
      }
    }
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
      [[unroll]] for (uint r = 0; r < NR; ++r)
        partial[r * wg + tid] += partial[r * wg + tid + stride];
    barrier();
  }
  if (tid < NR) {
    uint row = row0 + tid;
    if (row < p.n)
      y[p.col0 + row] = partial[tid * wg] + (p.has_bias != 0 ? bias[p.col0 + row] : 0.0);
  }
#endif
}
