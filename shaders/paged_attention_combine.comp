#version 450
// paged_attention_combine: merges the split-K partial results of paged_attention (and
// paged_decode) into the normalised output: out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s,
// M = max_s m_s; rows that saw no key (all l_s == 0) get zeros (runtime/ops/paged_attention.h).
// Splits with m_s == NEG_BIG saw no key; their o_s is never read (it may be unwritten).
// Bindings: 0 scratch f32 read: o [n_split, n_rows, head_dim], then ml [n_split, n_rows, 2]
//             (running max m_s, denominator l_s); also bound as vec4 (head_dim % 4 == 0)
//           1 out     f32 [n_rows, head_dim] write
// Push: n_rows (= n_q * n_heads), head_dim, n_split (<= 2 * WG), rows_per_y.
// Spec: 0 = WG (workgroup size, a power of two >= head_dim / 4, >= the subgroup size).
// Grid: one workgroup per row, row = y * rows_per_y + x. Threads split (column, split) pairs so
// that each issues few dependent loads, then reduce over splits in shared memory.
// Variant x8 (WITH_X8): out also rounded to int8 per 32 values (shaders/include/x8.glsl) as
// quantize_x8 over all n_rows * head_dim values would (head_dim % 32 == 0, head_dim <= 4 WG).
// Binding 2 x8 u32 [n / 4 + n / 16], n = n_rows * head_dim, write.
#include "common.glsl"
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(std430, binding = 0) readonly buffer SC { float scratch[]; };
layout(std430, binding = 0) readonly buffer SC4 { vec4 scratch4[]; };
layout(std430, binding = 1) writeonly buffer O { float out_[]; };
#ifdef WITH_X8
layout(std430, binding = 2) writeonly buffer XQ4 { uvec4 xq4[]; };
layout(std430, binding = 2) writeonly buffer XQ2 { vec2 xds[]; };
#define X8_STORE
#include "x8.glsl"
shared vec4 orow[WG];  // this row's output, head_dim / 4 vec4
#endif
layout(push_constant) uniform Push {
  uint n_rows;
  uint head_dim;
  uint n_split;
  uint rows_per_y;
} p;

const float NEG_BIG = -1.0e30;

shared float red[WG];      // one value per subgroup
shared float ws[2 * WG];  // e^(m_s - M), 0 for empty splits
shared vec4 red4[WG];

// The workgroup's max (is_max) or sum of v: subgroup reductions, then every invocation combines
// the subgroups' results in order (the same bits everywhere). Begins with a barrier: red[] is
// reused, the previous call's readers must be done.
float reduce(float v, bool is_max) {
  v = is_max ? subgroupMax(v) : subgroupAdd(v);
  barrier();
  if (subgroupElect()) red[gl_SubgroupID] = v;
  barrier();
  float t = is_max ? NEG_BIG : 0.0;
  for (uint i = 0; i < gl_NumSubgroups; ++i) t = is_max ? max(t, red[i]) : t + red[i];
  return t;
}

void main() {
  const uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;
  if (row >= p.n_rows) return;
  const uint tid = gl_LocalInvocationID.x, ml0 = p.n_split * p.n_rows * p.head_dim;
  float m0 = NEG_BIG, m1 = NEG_BIG;
  if (tid < p.n_split) m0 = scratch[ml0 + (tid * p.n_rows + row) * 2u];
  if (tid + WG < p.n_split) m1 = scratch[ml0 + ((tid + WG) * p.n_rows + row) * 2u];
  const float mx = reduce(max(m0, m1), true);
  float lsum = 0.0;
  for (uint s = tid; s < 2u * WG; s += WG) {
    const float ms = s == tid ? m0 : m1;
    const float w = ms > 0.5 * NEG_BIG ? exp(ms - mx) : 0.0;
    ws[s] = w;
    if (w > 0.0) lsum += w * scratch[ml0 + (s * p.n_rows + row) * 2u + 1u];
  }
  const float l = reduce(lsum, false);
  // Columns c (4 floats each) x slices of the splits.
  const uint hd4 = p.head_dim / 4u, slices = WG / hd4, c = tid % hd4, sl = tid / hd4;
  vec4 acc = vec4(0.0);
  if (sl < slices) {
    // Four independent loads in flight per iteration. Empty splits are neither read (a ragged
    // cache's short heads leave many: their bytes would be wasted) nor added (their o_s may be
    // garbage, even NaN).
    uint s = sl;
    for (; s + 3u * slices < p.n_split; s += 4u * slices) {
      vec4 v[4];
      float w[4];
      [[unroll]] for (uint k = 0; k < 4u; ++k) {
        w[k] = ws[s + k * slices];
        v[k] = w[k] > 0.0 ? scratch4[((s + k * slices) * p.n_rows + row) * hd4 + c] : vec4(0.0);
      }
      [[unroll]] for (uint k = 0; k < 4u; ++k) acc += w[k] > 0.0 ? w[k] * v[k] : vec4(0.0);
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
#ifdef WITH_X8
    orow[c] = acc;
#endif
  }
#ifdef WITH_X8
  barrier();
  if (tid < p.head_dim / 32u) {  // group tid of this row: vec4s 8 tid .. 8 tid + 7
    vec4 xv[8];
    [[unroll]] for (uint i = 0; i < 8u; ++i) xv[i] = orow[8u * tid + i];
    uint q[8];
    float dx, s;
    x8_round_32(xv, q, dx, s);
    x8_store(row * (p.head_dim / 32u) + tid, p.n_rows * p.head_dim, q, dx, s);
  }
#endif
}
