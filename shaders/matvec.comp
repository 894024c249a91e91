#version 450
// matvec: y[n] = w[n, k] . x[k] (+ bias[n]) for decode (m == 1); w in any weight type. Each
// workgroup owns NR consecutive rows; threads stride over k four values at a time (dequantise +
// dot in fp32) and the partial sums are reduced in shared memory (or with subgroupAdd).
// Bindings: 0 x f32 [k] read | 1 w W_<TYPE> [n, k] read | 2 bias f32 [n] read (any buffer when
//           has_bias == 0) | 3 y f32 [n] write
// Push: m (== 1), n, k, has_bias.
// Spec: 0 = workgroup size (power of two; a multiple of the subgroup size with USE_SUBGROUP),
//       1 = NR rows per workgroup.
// Grid: gx x gy x 1 with gx * gy >= ceil(n / NR) (row group = wg.y * gx + wg.x; gx <= 65535).
#include "common.glsl"
#if defined(USE_SUBGROUP)
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 2;

layout(std430, binding = 0) readonly buffer X { float x[]; };
#define W_BINDING 1
#include "dequant.glsl"
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push {
  uint m;
  uint n;
  uint k;
  uint has_bias;
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
    if (row < p.n) y[row] = s + (p.has_bias != 0 ? bias[row] : 0.0);
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
    if (row < p.n) y[row] = partial[tid * wg] + (p.has_bias != 0 ? bias[row] : 0.0);
  }
#endif
}
