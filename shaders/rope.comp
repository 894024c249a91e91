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

// theta - 2*pi*round(theta / 2*pi), accurate for every fp32 theta below 2^55: GPUs' own cos/sin
// range reduction is often poor for the large angles of long contexts (pos ~1e5 rad), and fma may
// not be fused (lavapipe), so large angles are reduced exactly in integer arithmetic: the 24-bit
// mantissa times 1/(2*pi) as a 96-bit fixed-point fraction, keeping 32 bits of the turn fraction.
float reduce_angle(float theta) {
  float a = abs(theta);
  if (a < 64.0) {  // Cody-Waite: k <= 10 and 6.28125 has 8 bits, so k * 6.28125 is exact
    precise float k = round(a * 0.159154937);
    precise float r = (a - k * 6.28125) - k * 0.00193530717;
    return theta < 0.0 ? -r : r;
  }
  uint bits = floatBitsToUint(a);
  uint m = (bits & 0x7fffffu) | 0x800000u;
  int e = int(bits >> 23) - 150;  // a = m * 2^e, e >= -17 here
  const uint k2 = 0x28be60dbu, k1 = 0x9391054au, k0 = 0x7f09d5f4u;  // 2^96 / (2*pi)
  uint h0, l0, h1, l1, h2, l2, c1, c2;
  umulExtended(m, k0, h0, l0);
  umulExtended(m, k1, h1, l1);
  umulExtended(m, k2, h2, l2);
  uint w[5];
  w[0] = l0;
  w[1] = uaddCarry(h0, l1, c1);
  w[2] = uaddCarry(h1, l2, c2);
  uint c3;
  w[2] = uaddCarry(w[2], c1, c3);
  w[3] = h2 + c2 + c3;
  w[4] = 0u;
  // a / (2*pi) = P * 2^(e - 96); the turn fraction's top 32 bits are bits [64 - e, 96 - e) of P.
  uint s = uint(64 - e);
  uint idx = min(s / 32u, 3u);
  uint sh = s % 32u;
  uint frac = sh == 0u ? w[idx] : (w[idx] >> sh) | (w[idx + 1u] << (32u - sh));
  float r = float(int(frac)) * 1.46291808e-09;  // 2*pi / 2^32; int() maps [0.5, 1) turns below 0
  return theta < 0.0 ? -r : r;
}

void main() {
  uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;  // = t * n_heads + h
  if (row >= p.n_rows) return;
  float t_pos = float(pos[row / p.n_heads]);
  uint base = row * p.head_dim;
  uint half_dims = p.rot_dims / 2;
  for (uint i = gl_LocalInvocationID.x; i < half_dims; i += gl_WorkGroupSize.x) {
    precise float theta = t_pos * inv_freq[i];
    float r = reduce_angle(theta);
    float c = cos(r) * p.attn_factor;
    float s = sin(r) * p.attn_factor;
    uint i0 = base + (NEOX != 0 ? i : 2 * i);
    uint i1 = base + (NEOX != 0 ? i + half_dims : 2 * i + 1);
    float x0 = x[i0];
    float x1 = x[i1];
    x[i0] = x0 * c - x1 * s;
    x[i1] = x0 * s + x1 * c;
  }
}
