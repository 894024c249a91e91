#version 450
// quantize_x8: x f32 [k] rounded to int8 per 32 values (dx = amax / 127) with each group's dx and
// fp32 sum, once per token, for the Q4_K matvec variant 4 (shaders/matvec_wide.comp MODE 4).
// Bindings: 0 x f32 [k] read | 1 x8 u32 [k / 4 + k / 16] write (layout: shaders/include/x8.glsl)
// Push: k (% 256 == 0).
// Spec: 0 = workgroup size.
// Grid: ceil(k / 32 / wg) x 1 x 1; one thread per 32-value group.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) writeonly buffer XQ4 { uvec4 xq4[]; };
layout(std430, binding = 1) writeonly buffer XQ2 { vec2 xds[]; };
layout(push_constant) uniform Push { uint k; } p;
#define X8_LOAD
#define X8_STORE
#include "x8.glsl"

void main() {
  const uint g = gl_GlobalInvocationID.x;
  if (g >= p.k / 32u) return;
  uint q[8];
  float dx, s;
  quantise_32(8u * g, q, dx, s);
  x8_store(g, p.k, q, dx, s);
}
