#version 450
// argmax: out[r] = the lowest index j with logits[r, j] maximal (NaNs are never chosen; a row of
// only NaNs gives 0).
// Bindings: 0 logits f32 [n_rows, n_vocab] read | 1 out i32 [n_rows] write
// Push: n_rows, n_vocab, rows_per_y. Spec: 0 = workgroup size (power of two <= 1024).
// Grid: one workgroup per row, row = y * rows_per_y + x (x <= 65535); threads stride over the
// vocabulary, then a shared-memory tree reduction on (value, index).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer L { float logits[]; };
layout(std430, binding = 1) writeonly buffer O { int out_idx[]; };
layout(push_constant) uniform Push {
  uint n_rows;
  uint n_vocab;
  uint rows_per_y;
} p;

shared float best_v[1024];
shared uint best_i[1024];

// (v, i) beats (bv, bi): larger value, or equal value and lower index. NaN never beats.
bool beats(float v, uint i, float bv, uint bi) { return v > bv || (v == bv && i < bi); }

void main() {
  uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;
  if (row >= p.n_rows) return;  // uniform per workgroup
  uint tid = gl_LocalInvocationID.x;
  uint base = row * p.n_vocab;
  float bv = -1.0 / 0.0;
  uint bi = 0xffffffffu;
  for (uint j = tid; j < p.n_vocab; j += gl_WorkGroupSize.x) {
    float v = logits[base + j];
    if (beats(v, j, bv, bi)) {
      bv = v;
      bi = j;
    }
  }
  best_v[tid] = bv;
  best_i[tid] = bi;
  barrier();
  for (uint stride = gl_WorkGroupSize.x / 2; stride > 0; stride /= 2) {
    if (tid < stride && beats(best_v[tid + stride], best_i[tid + stride], best_v[tid], best_i[tid])) {
      best_v[tid] = best_v[tid + stride];
      best_i[tid] = best_i[tid + stride];
    }
    barrier();
  }
  if (tid == 0) out_idx[row] = best_i[0] == 0xffffffffu ? 0 : int(best_i[0]);
}
