#version 450
// kv_gather: copies n rows between paged pools, slot src_slot[i] -> slot dst_slot[i], for K, V
// (bytes as stored, any KV type: rows are whole uint16s) and positions (runtime/ops/paged_kv.h).
// Bindings: 0 src_slot i32 [n] read | 1 dst_slot i32 [n] read
//           2 k_src [n_src_slots, k_halfs] u16 read | 3 v_src [n_src_slots, v_halfs] u16 read
//           4 pos_src i32 [n_src_slots] read
//           5 k_dst [n_dst_slots, k_halfs] u16 write | 6 v_dst [n_dst_slots, v_halfs] u16 write
//           7 pos_dst i32 [n_dst_slots] write
// Push: n, k_halfs, v_halfs (uint16s per K / V row), n_src_slots, n_dst_slots, rows_per_y.
// Spec: 0 = workgroup size. Grid: one workgroup per row, row = y * rows_per_y + x, x <= 65535.
// Out-of-range slots are skipped (the CPU reference aborts on them).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer SS { int src_slot[]; };
layout(std430, binding = 1) readonly buffer DS { int dst_slot[]; };
layout(std430, binding = 2) readonly buffer KS { uint16_t k_src[]; };
layout(std430, binding = 3) readonly buffer VS { uint16_t v_src[]; };
layout(std430, binding = 4) readonly buffer PS { int pos_src[]; };
layout(std430, binding = 5) writeonly buffer KD { uint16_t k_dst[]; };
layout(std430, binding = 6) writeonly buffer VD { uint16_t v_dst[]; };
layout(std430, binding = 7) writeonly buffer PD { int pos_dst[]; };
layout(push_constant) uniform Push {
  uint n;
  uint k_halfs;
  uint v_halfs;
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
  for (uint c = gl_LocalInvocationID.x; c < p.k_halfs; c += gl_WorkGroupSize.x)
    k_dst[uint(d) * p.k_halfs + c] = k_src[uint(s) * p.k_halfs + c];
  for (uint c = gl_LocalInvocationID.x; c < p.v_halfs; c += gl_WorkGroupSize.x)
    v_dst[uint(d) * p.v_halfs + c] = v_src[uint(s) * p.v_halfs + c];
  if (gl_LocalInvocationID.x == 0) pos_dst[d] = pos_src[s];
}
