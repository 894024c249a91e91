#version 450
// paged_attention_combine: merges the split-K partial results of paged_attention into the
// normalised output: out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s, M = max_s m_s; rows that
// saw no key (all l_s == 0) get zeros (runtime/ops/paged_attention.h).
// Bindings: 0 scratch f32 [n_split, n_rows, head_dim + 2] read (o_s, m_s, l_s)
//           1 out     f32 [n_rows, head_dim]               write
// Push: n_rows (= n_q * n_heads), head_dim, n_split, rows_per_y. Spec: 0 = workgroup size.
// Grid: one workgroup per row, row = y * rows_per_y + x; threads loop over head_dim.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer SC { float scratch[]; };
layout(std430, binding = 1) writeonly buffer O { float out_[]; };
layout(push_constant) uniform Push {
  uint n_rows;
  uint head_dim;
  uint n_split;
  uint rows_per_y;
} p;

const float NEG_BIG = -1.0e30;

void main() {
  const uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;
  if (row >= p.n_rows) return;
  const uint stride = p.head_dim + 2u;
  float m = NEG_BIG;
  for (uint s = 0; s < p.n_split; ++s) m = max(m, scratch[(s * p.n_rows + row) * stride + p.head_dim]);
  float l = 0.0;
  for (uint s = 0; s < p.n_split; ++s) {
    const uint b = (s * p.n_rows + row) * stride + p.head_dim;
    l += scratch[b] > 0.5 * NEG_BIG ? exp(scratch[b] - m) * scratch[b + 1u] : 0.0;
  }
  for (uint d = gl_LocalInvocationID.x; d < p.head_dim; d += gl_WorkGroupSize.x) {
    float acc = 0.0;
    for (uint s = 0; s < p.n_split; ++s) {
      const uint b = (s * p.n_rows + row) * stride;
      const float ms = scratch[b + p.head_dim];
      if (ms > 0.5 * NEG_BIG) acc += exp(ms - m) * scratch[b + d];
    }
    out_[row * p.head_dim + d] = l > 0.0 ? acc / l : 0.0;
  }
}
