#version 450
// add: y[i] = a[i] + b[i] over n_elems fp32 values (residual add).
// Bindings: 0 a  f32 [n_elems] read | 1 b f32 [n_elems] read | 2 y f32 [n_elems] write (may alias a)
// Push: n_elems. Spec: 0 = workgroup size. Grid: ceil(n_elems / wg) x 1 x 1.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint n_elems; } p;

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < p.n_elems) y[i] = a[i] + b[i];
}
