#version 450
// argmax: out[r] = the lowest index j with logits[r, j] maximal (NaNs are never chosen; a row of
// only NaNs gives 0).
// Bindings: 0 logits f32 [n_rows, n_vocab] read | 1 out i32 [n_rows] write
// Push: n_rows, n_vocab, rows_per_y. Spec: 0 = workgroup size (power of two <= 1024).
// Grid: one workgroup per row, row = y * rows_per_y + x (x <= 65535); threads stride over the
// vocabulary (vec4 loads where n_vocab % 4 == 0), then a shared-memory tree reduction on
// (value, index). Every (value, index) order gives the same winner.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer L { float logits[]; };
layout(std430, binding = 0) readonly buffer L4 { vec4 logits4[]; };
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
  const uint wg = gl_WorkGroupSize.x;
  if (p.n_vocab % 4u == 0u) {
    // 16-byte loads, four of them in flight per thread and round (one row is latency-bound).
    const uint n4 = p.n_vocab / 4u, base4 = base / 4u;
    for (uint j0 = tid; j0 < n4; j0 += 4u * wg) {
      vec4 v[4];
      [[unroll]] for (uint u = 0; u < 4u; ++u) {
        const uint j4 = j0 + u * wg;
        v[u] = j4 < n4 ? logits4[base4 + j4] : vec4(uintBitsToFloat(0x7FC00000u));  // NaN: never
      }
      [[unroll]] for (uint u = 0; u < 4u; ++u) {
        const uint j = 4u * (j0 + u * wg);
        [[unroll]] for (uint e = 0; e < 4u; ++e)
          if (beats(v[u][e], j + e, bv, bi)) bv = v[u][e], bi = j + e;
      }
    }
  } else {
    for (uint j = tid; j < p.n_vocab; j += wg) {
      float v = logits[base + j];
      if (beats(v, j, bv, bi)) {
        bv = v;
        bi = j;
      }
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
