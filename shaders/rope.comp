#version 450
// rope: rotates, in place, the first rot_dims dims of every head of x by angle pos[t] * inv_freq[i],
// with cos/sin scaled by attn_factor; dims rot_dims..head_dim-1 are left untouched.
// Pairs: NEOX ? (i, i + rot_dims/2) ("rotate_half") : (2i, 2i + 1) (adjacent).
// Bindings: 0 x        f32 [n_tokens, n_heads, head_dim] read+write (in place)
//           1 pos      i32 [n_tokens]                    read
//           2 inv_freq f32 [rot_dims / 2]                read
// Push: n_rows (= n_tokens * n_heads), n_heads, head_dim, rot_dims, rows_per_y, attn_factor.
// Spec: 0 = workgroup size, 1 = NEOX (bool as uint). Grid: one workgroup per (t, h) row,
// row = y * rows_per_y + x (x <= 65535); threads loop over the rot_dims / 2 pairs.
#include "common.glsl"
#include "rope.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NEOX = 1;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer P { int pos[]; };
layout(std430, binding = 2) readonly buffer F { float inv_freq[]; };
layout(push_constant) uniform Push {
  uint n_rows;
  uint n_heads;
  uint head_dim;
  uint rot_dims;
  uint rows_per_y;
  float attn_factor;
} p;

void main() {
  uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;  // = t * n_heads + h
  if (row >= p.n_rows) return;
  float t_pos = float(pos[row / p.n_heads]);
  uint base = row * p.head_dim;
  uint half_dims = p.rot_dims / 2;
  for (uint i = gl_LocalInvocationID.x; i < half_dims; i += gl_WorkGroupSize.x) {
    const vec2 cs = rope_cos_sin(t_pos, inv_freq[i], p.attn_factor);
    const uvec2 d = base + rope_pair(i, half_dims, NEOX != 0);
    const vec2 y = rope_rotate(x[d.x], x[d.y], cs);
    x[d.x] = y.x;
    x[d.y] = y.y;
  }
}
