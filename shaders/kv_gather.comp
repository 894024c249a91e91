#version 450
// kv_gather: copies n rows between paged pools, slot src_slot[i] -> slot dst_slot[i], for K, V
// (f16, copied bit-exactly as pairs of halves) and positions (runtime/ops/paged_kv.h).
// Bindings: 0 src_slot i32 [n] read | 1 dst_slot i32 [n] read
//           2 k_src f16 [n_src_slots, head_dim] read | 3 v_src (same) read | 4 pos_src i32 [n_src_slots] read
//           5 k_dst f16 [n_dst_slots, head_dim] write | 6 v_dst (same) write | 7 pos_dst i32 [n_dst_slots] write
// Push: n, half_dim (= head_dim / 2; f16 pairs per row), n_src_slots, n_dst_slots, rows_per_y.
// Spec: 0 = workgroup size. Grid: one workgroup per row, row = y * rows_per_y + x, x <= 65535.
// Out-of-range slots are skipped (the CPU reference aborts on them).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer SS { int src_slot[]; };
layout(std430, binding = 1) readonly buffer DS { int dst_slot[]; };
layout(std430, binding = 2) readonly buffer KS { uint k_src[]; };
layout(std430, binding = 3) readonly buffer VS { uint v_src[]; };
layout(std430, binding = 4) readonly buffer PS { int pos_src[]; };
layout(std430, binding = 5) writeonly buffer KD { uint k_dst[]; };
layout(std430, binding = 6) writeonly buffer VD { uint v_dst[]; };
layout(std430, binding = 7) writeonly buffer PD { int pos_dst[]; };
layout(push_constant) uniform Push {
  uint n;
  uint half_dim;
  uint n_src_slots;
  uint n_dst_slots;
  uint rows_per_y;
} p;

void main() {
  uint i = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;
  if (i >= p.n) return;
  int s = src_slot[i];
  int d = dst_slot[i];
  if (s < 0 || uint(s) >= p.n_src_slots || d < 0 || uint(d) >= p.n_dst_slots) return;
  uint src = uint(s) * p.half_dim;
  uint dst = uint(d) * p.half_dim;
  for (uint c = gl_LocalInvocationID.x; c < p.half_dim; c += gl_WorkGroupSize.x) {
    k_dst[dst + c] = k_src[src + c];
    v_dst[dst + c] = v_src[src + c];
  }
  if (gl_LocalInvocationID.x == 0) pos_dst[d] = pos_src[s];
}
