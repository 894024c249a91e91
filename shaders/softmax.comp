#version 450
// softmax: y[r, :] = softmax(x[r, :] * scale), numerically stable (max subtracted), fp32 sums.
// Bindings: 0 x f32 [n_rows, n_cols] read | 1 y f32 [n_rows, n_cols] write (may alias x)
// Push: n_rows, n_cols, scale, rows_per_y. Spec: 0 = workgroup size (power of two <= 1024).
// Grid: one workgroup per row, row = y * rows_per_y + x (x <= 65535); each thread strides over the
// columns (any n_cols, e.g. a 256K vocabulary): pass 1 max, pass 2 sum of exp, pass 3 write.
// -inf inputs give 0; a row whose every value is -inf has no defined result.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push {
  uint n_rows;
  uint n_cols;
  float scale;
  uint rows_per_y;
} p;

shared float red[1024];

// Tree reduction over the workgroup; op 0 = max, 1 = sum. Every thread gets the result.
float reduce(float v, uint op) {
  uint tid = gl_LocalInvocationID.x;
  red[tid] = v;
  barrier();
  for (uint stride = gl_WorkGroupSize.x / 2; stride > 0; stride /= 2) {
    if (tid < stride) red[tid] = op == 0u ? max(red[tid], red[tid + stride]) : red[tid] + red[tid + stride];
    barrier();
  }
  float r = red[0];
  barrier();  // red[] is reused by the next reduction
  return r;
}

void main() {
  uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;
  if (row >= p.n_rows) return;  // uniform per workgroup: barriers stay in uniform control flow
  uint tid = gl_LocalInvocationID.x;
  uint wg = gl_WorkGroupSize.x;
  uint base = row * p.n_cols;
  float m = -1.0 / 0.0;
  for (uint c = tid; c < p.n_cols; c += wg) m = max(m, x[base + c] * p.scale);
  m = reduce(m, 0u);
  float s = 0.0;
  for (uint c = tid; c < p.n_cols; c += wg) s += exp(x[base + c] * p.scale - m);
  float inv = 1.0 / reduce(s, 1u);
  for (uint c = tid; c < p.n_cols; c += wg) y[base + c] = exp(x[base + c] * p.scale - m) * inv;
}
