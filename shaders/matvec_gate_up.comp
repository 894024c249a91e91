#version 450
// matvec_gate_up: the first half of a gated MLP for one token in one dispatch,
// y[j] = act(w_gate[j] . x) * (w_up[j] . x), and y rounded to int8 per 32 values for the down
// projection's matvec (shaders/include/x8.glsl): the gate and up matvecs and the activation of
// three dependent dispatches in one. Q4_K weights against x already rounded to int8 (matvec_wide
// MODE 4 arithmetic, shaders/include/q4k_x8.glsl).
// Each workgroup owns 32 rows of both weights (one x8 group of y), split among teams of 64
// invocations with RC rows of each weight apiece: a team's lanes take the 64-value units
// u = lane, lane + 64, ... of its rows, each team sums its rows, and the group's y is rounded in
// shared memory. All rows are in flight at once (no pass waits for another).
// Bindings: 0 x8 u32 [k / 4 + k / 16] read | 1 w_gate Q4_K [n, k] read | 2 w_up Q4_K [n, k] read |
//           3 y f32 [n] write | 4 y8 u32 [n / 4 + n / 16] write (x8 layout of y)
// Push: n (% 256 == 0), k (% 256 == 0).
// Spec: 0 = workgroup size, 64 * 32 / RC (with USE_SUBGROUP the subgroup size divides 64),
//       1 = RC rows of each weight per team (divides 32), 2 = ACT (shaders/include/act.glsl).
// Grid: gx x gy x 1 with gx * gy >= n / 32 (row group = wg.y * gx + wg.x).
#include "common.glsl"
#if defined(USE_SUBGROUP)
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "q4k_x8.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint RC = 8;
layout(constant_id = 2) const uint ACT = 0;
#include "act.glsl"

layout(std430, binding = 0) readonly buffer XIN { uvec4 xin4[]; };
layout(std430, binding = 1) readonly buffer WGATE { uvec4 wg4[]; };  // 9 per 256-value block
layout(std430, binding = 2) readonly buffer WUP { uvec4 wu4[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(std430, binding = 4) writeonly buffer XQ4 { uvec4 xq4[]; };
layout(std430, binding = 4) writeonly buffer XQ2 { vec2 xds[]; };
layout(push_constant) uniform Push {
  uint n;
  uint k;
} p;
#define X8_STORE
#include "x8.glsl"

const uint TEAM = 64u;
#if defined(USE_SUBGROUP)
shared float partial[64 * 16];  // [gate/up row][subgroup of its team]
#else
shared float partial[64 * TEAM];  // [gate/up row][lane of its team]
#endif
shared float gu[64];  // the group's 32 gate sums, then its 32 up sums

void main() {
  const uint tid = gl_LocalInvocationID.x, lane = tid % TEAM, rt = (tid / TEAM) * RC;
  const uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 32u;
  if (row0 >= p.n) return;  // whole workgroup leaves together: n % 32 == 0
  const uint nb = p.k / 256u;
  float ag[RC], au[RC];
  [[unroll]] for (uint r = 0; r < RC; ++r) ag[r] = 0.0, au[r] = 0.0;
  for (uint u = lane; u < nb * 4u; u += TEAM) {
    const uint blk = u / 4u, c = u % 4u, xo = blk * 64u + 16u * c;
    uint ql[8], qh[8];  // words xo .. xo + 15 of x8; (dx, sum) of groups 2 u, 2 u + 1
    [[unroll]] for (uint i = 0; i < 2u; ++i) {
      const uvec4 a = xin4[xo / 4u + i], b = xin4[xo / 4u + 2u + i];
      ql[4u * i] = a.x, ql[4u * i + 1u] = a.y, ql[4u * i + 2u] = a.z, ql[4u * i + 3u] = a.w;
      qh[4u * i] = b.x, qh[4u * i + 1u] = b.y, qh[4u * i + 2u] = b.z, qh[4u * i + 3u] = b.w;
    }
    const vec4 ds = uintBitsToFloat(xin4[p.k / 16u + u]);
    [[unroll]] for (uint r = 0; r < RC; ++r) {
      const uint bq = (row0 + rt + r) * nb * 9u + blk * 9u, o1 = bq + 1u + 2u * c;
      ag[r] += q4k_unit_dot(wg4[bq], wg4[o1], wg4[o1 + 1u], c, ql, qh, ds.x, ds.z, ds.y, ds.w);
      au[r] += q4k_unit_dot(wu4[bq], wu4[o1], wu4[o1 + 1u], c, ql, qh, ds.x, ds.z, ds.y, ds.w);
    }
  }
#if defined(USE_SUBGROUP)
  const uint per_team = TEAM / gl_SubgroupSize, slot = gl_SubgroupID % per_team;
  [[unroll]] for (uint r = 0; r < RC; ++r) {
    const float sg = subgroupAdd(ag[r]), su = subgroupAdd(au[r]);
    if (subgroupElect()) {
      partial[(rt + r) * 16u + slot] = sg;
      partial[(32u + rt + r) * 16u + slot] = su;
    }
  }
  barrier();
  if (tid < 64u) {
    float s = 0.0;
    for (uint i = 0; i < per_team; ++i) s += partial[tid * 16u + i];
    gu[tid] = s;
  }
#else
  [[unroll]] for (uint r = 0; r < RC; ++r) {
    partial[(rt + r) * TEAM + lane] = ag[r];
    partial[(32u + rt + r) * TEAM + lane] = au[r];
  }
  barrier();
  for (uint stride = TEAM / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride)
      [[unroll]] for (uint r = 0; r < RC; ++r) {
        partial[(rt + r) * TEAM + lane] += partial[(rt + r) * TEAM + lane + stride];
        partial[(32u + rt + r) * TEAM + lane] += partial[(32u + rt + r) * TEAM + lane + stride];
      }
    barrier();
  }
  if (tid < 64u) gu[tid] = partial[tid * TEAM];
#endif
  barrier();
  if (tid < 32u) {
    const float v = act(gu[tid]) * gu[32u + tid];
    y[row0 + tid] = v;
    gu[tid] = v;  // each thread overwrites only its own gate sum
  }
  barrier();
  if (tid == 0u) {
    vec4 yv[8];
    [[unroll]] for (uint j = 0; j < 8u; ++j)
      yv[j] = vec4(gu[4u * j], gu[4u * j + 1u], gu[4u * j + 2u], gu[4u * j + 3u]);
    uint q[8];
    float dx, s;
    x8_round_32(yv, q, dx, s);
    x8_store(row0 / 32u, p.n, q, dx, s);
  }
}
