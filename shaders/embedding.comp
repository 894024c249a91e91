#version 450
// embedding: y[t, :] = table[ids[t], :] * scale, table rows dequantised from any weight type.
// Bindings: 0 ids i32 [n_tokens] read | 1 table W_<TYPE> [n_vocab, d] read | 2 y f32 [n_tokens, d] write
// Push: n_tokens, d, scale, row0, n_rows: the table binding may be the row chunk
// [row0, row0 + n_rows) of a larger table (bindings within maxStorageBufferRange, one dispatch per
// chunk); tokens whose id falls outside the chunk are left to the dispatch of their own chunk.
// Spec: 0 = workgroup size.
// Grid: n_tokens x ceil(d / (4 * wg)) x 1 (each thread writes 4 consecutive values).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer Ids { int ids[]; };
#define W_BINDING 1
#include "dequant.glsl"
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push {
  uint n_tokens;
  uint d;
  float scale;
  uint row0;
  uint n_rows;
} p;

void main() {
  const uint t = gl_WorkGroupID.x;
  const uint c = (gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * 4;
  if (t >= p.n_tokens || c >= p.d) return;
  const uint row = uint(ids[t]) - p.row0;  // ids below row0 wrap to large values
  if (row >= p.n_rows) return;
  vec4 v = w_load4(w_row_base(row, p.d), c, p.d) * p.scale;
  [[unroll]] for (uint i = 0; i < 4; ++i)
    if (c + i < p.d) y[t * p.d + c + i] = v[i];
}
