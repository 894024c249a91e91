#version 450
// dequant_f16: y = f16(w) for a block-quantised weight [n, k]: the pre-pass of the tensor-core
// matmul on many tokens (runtime/ops/matmul.cpp), so that each weight value is dequantised once
// per matmul instead of once per tile of rows. The values are those matmul_coopmat.comp stages
// (include/dequant.glsl, rounded to f16).
// Bindings: 0 w W_<TYPE> [n, k] read | 1 y f16 [n, k] (as uvec4: 8 halves) write
// Push: n, k (k a multiple of the block size).
// Spec: 0 = workgroup size.
// Grid: gx x gy with gx * gy * wg >= n * k / 8: each thread writes 8 consecutive values.
#include "common.glsl"
layout(local_size_x_id = 0) in;
#define W_BINDING 0
#include "dequant.glsl"
layout(std430, binding = 1) writeonly buffer Y { uvec4 y8[]; };
layout(push_constant) uniform Push {
  uint n;
  uint k;
} p;

void main() {
  const uint k8 = p.k / 8u;
  const uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x +
                 gl_LocalInvocationID.x;
  if (i >= p.n * k8) return;
  const uint row = i / k8, c = (i % k8) * 8u, base = w_row_base(row, p.k);
  const vec4 a = w_load4(base, c, p.k), b = w_load4(base, c + 4u, p.k);
  y8[i] = uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
