// RoPE angle and rotation shared by shaders/rope.comp and shaders/kv_write.comp (variant rope), so
// that K roped inside kv_write is bit-identical to rope() then kv_write.

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

// (cos, sin) * attn_factor of the angle t_pos * inv_freq (the fp32 product, as HF computes it).
vec2 rope_cos_sin(float t_pos, float inv_freq, float attn_factor) {
  precise float theta = t_pos * inv_freq;
  float r = reduce_angle(theta);
  return vec2(cos(r) * attn_factor, sin(r) * attn_factor);
}

// Offsets in a head of the two dims that pair i (< half_dims = rot_dims / 2) rotates:
// neox ? (i, i + half_dims) ("rotate_half") : (2i, 2i + 1) (adjacent).
uvec2 rope_pair(uint i, uint half_dims, bool neox) {
  return neox ? uvec2(i, i + half_dims) : uvec2(2u * i, 2u * i + 1u);
}

// (x0, x1) rotated by cs = rope_cos_sin(...). precise: no fma contraction, so every shader that
// includes this rounds the same way.
vec2 rope_rotate(float x0, float x1, vec2 cs) {
  precise float y0 = x0 * cs.x - x1 * cs.y;
  precise float y1 = x0 * cs.y + x1 * cs.x;
  return vec2(y0, y1);
}
