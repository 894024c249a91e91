#version 450
// gated_act: y[i] = act(gate[i]) * up[i] (gated MLP), act chosen by spec constant ACT:
// 0 SiLU x / (1 + e^-x) | 1 GELU, tanh approximation (HF gelu_pytorch_tanh) | 2 GELU, exact erf.
// Bindings: 0 gate f32 [n_elems] read | 1 up f32 [n_elems] read | 2 y f32 [n_elems] write (may alias gate)
// Push: n_elems, groups_per_y. Spec: 0 = workgroup size, 1 = ACT.
// Grid: ceil(n_elems / wg) workgroups as (groups_per_y, ceil(groups / groups_per_y)), x <= 65535.
// Variant x8 (WITH_X8): y also rounded to int8 per 32 values (shaders/include/x8.glsl) as
// quantize_x8 would round it afterwards (n_elems % workgroup size == 0, the size a multiple of
// 32): one thread per value as above, the workgroup's values through shared memory, then one
// thread per 32-value group rounds them. Binding 3 x8 u32 [n_elems / 4 + n_elems / 16] write.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint ACT = 0;
layout(std430, binding = 0) readonly buffer G { float gate[]; };
layout(std430, binding = 1) readonly buffer U { float up[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
#ifdef WITH_X8
layout(std430, binding = 3) writeonly buffer XQ4 { uvec4 xq4[]; };
layout(std430, binding = 3) writeonly buffer XQ2 { vec2 xds[]; };
#define X8_STORE
#include "x8.glsl"
shared float ys[WG];  // the workgroup's values of y
#endif
layout(push_constant) uniform Push {
  uint n_elems;
  uint groups_per_y;
} p;

#include "act.glsl"

void main() {
#ifdef WITH_X8
  const uint wg_id = gl_WorkGroupID.y * p.groups_per_y + gl_WorkGroupID.x;
  if (wg_id * WG >= p.n_elems) return;  // whole workgroups: n_elems % WG == 0
  const uint tid = gl_LocalInvocationID.x, e = wg_id * WG + tid;
  const float v = act(gate[e]) * up[e];
  y[e] = v;
  ys[tid] = v;
  barrier();
  if (tid < WG / 32u) {
    vec4 yv[8];
    [[unroll]] for (uint j = 0; j < 8u; ++j) {
      const uint b = 32u * tid + 4u * j;
      yv[j] = vec4(ys[b], ys[b + 1u], ys[b + 2u], ys[b + 3u]);
    }
    uint q[8];
    float dx, s;
    x8_round_32(yv, q, dx, s);
    x8_store(wg_id * (WG / 32u) + tid, p.n_elems, q, dx, s);
  }
#else
  uint i = (gl_WorkGroupID.y * p.groups_per_y + gl_WorkGroupID.x) * gl_WorkGroupSize.x +
           gl_LocalInvocationID.x;
  if (i < p.n_elems) y[i] = act(gate[i]) * up[i];
#endif
}
