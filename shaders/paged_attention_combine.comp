#version 450
// paged_attention_combine: merges the split-K partial results of paged_attention (and
// paged_decode) into the normalised output: out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s,
// M = max_s m_s; rows that saw no key (all l_s == 0) get zeros (runtime/ops/paged_attention.h).
// Splits with m_s == NEG_BIG saw no key; their o_s is never read (it may be unwritten).
// Bindings: 0 scratch f32 read: o [n_split, n_rows, head_dim], then ml [n_split, n_rows, 2]
//             (running max m_s, denominator l_s); also bound as vec4 (head_dim % 4 == 0)
//           1 out     f32 [n_rows, head_dim] write
// Push: n_rows (= n_q * n_heads), head_dim, n_split (<= 2 * WG), rows_per_y.
// Spec: 0 = WG (workgroup size, a power of two >= head_dim / 4).
// Grid: one workgroup per row, row = y * rows_per_y + x. Threads split (column, split) pairs so
// that each issues few dependent loads, then reduce over splits in shared memory.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(std430, binding = 0) readonly buffer SC { float scratch[]; };
layout(std430, binding = 0) readonly buffer SC4 { vec4 scratch4[]; };
layout(std430, binding = 1) writeonly buffer O { float out_[]; };
layout(push_constant) uniform Push {
  uint n_rows;
  uint head_dim;
  uint n_split;
  uint rows_per_y;
} p;

const float NEG_BIG = -1.0e30;

shared float red[WG];
shared float ws[2 * WG];  // e^(m_s - M), 0 for empty splits
shared vec4 red4[WG];

// Tree reduction over the workgroup of red[]: max (is_max) or sum; result in red[0].
void reduce(bool is_max) {
  for (uint stride = WG / 2u; stride > 0u; stride >>= 1) {
    barrier();
    const uint t = gl_LocalInvocationID.x;
    if (t < stride) red[t] = is_max ? max(red[t], red[t + stride]) : red[t] + red[t + stride];
  }
  barrier();
}

void main() {
  const uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;
  if (row >= p.n_rows) return;
  const uint tid = gl_LocalInvocationID.x, ml0 = p.n_split * p.n_rows * p.head_dim;
  float m0 = NEG_BIG, m1 = NEG_BIG;
  if (tid < p.n_split) m0 = scratch[ml0 + (tid * p.n_rows + row) * 2u];
  if (tid + WG < p.n_split) m1 = scratch[ml0 + ((tid + WG) * p.n_rows + row) * 2u];
  red[tid] = max(m0, m1);
  reduce(true);
  const float mx = red[0];
  barrier();
  float lsum = 0.0;
  for (uint s = tid; s < 2u * WG; s += WG) {
    const float ms = s == tid ? m0 : m1;
    const float w = ms > 0.5 * NEG_BIG ? exp(ms - mx) : 0.0;
    ws[s] = w;
    if (w > 0.0) lsum += w * scratch[ml0 + (s * p.n_rows + row) * 2u + 1u];
  }
  red[tid] = lsum;
  reduce(false);
  const float l = red[0];
  // Columns c (4 floats each) x slices of the splits.
  const uint hd4 = p.head_dim / 4u, slices = WG / hd4, c = tid % hd4, sl = tid / hd4;
  vec4 acc = vec4(0.0);
  if (sl < slices) {
    // Four independent loads in flight per iteration; empty splits are selected away (their o_s
    // may be garbage, even NaN).
    uint s = sl;
    for (; s + 3u * slices < p.n_split; s += 4u * slices) {
      vec4 v[4];
      [[unroll]] for (uint k = 0; k < 4u; ++k) v[k] = scratch4[((s + k * slices) * p.n_rows + row) * hd4 + c];
      [[unroll]] for (uint k = 0; k < 4u; ++k) {
        const float w = ws[s + k * slices];
        acc += w > 0.0 ? w * v[k] : vec4(0.0);
      }
    }
    for (; s < p.n_split; s += slices) {
      const float w = ws[s];
      if (w > 0.0) acc += w * scratch4[(s * p.n_rows + row) * hd4 + c];
    }
  }
  red4[tid] = acc;
  barrier();
  if (sl == 0u) {
    for (uint k = 1u; k < slices; ++k) acc += red4[k * hd4 + c];
    acc = l > 0.0 ? acc / l : vec4(0.0);
    const uint b = row * p.head_dim + 4u * c;
    out_[b] = acc.x, out_[b + 1u] = acc.y, out_[b + 2u] = acc.z, out_[b + 3u] = acc.w;
  }
}
