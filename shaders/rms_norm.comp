#version 450
// rms_norm: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * (w[:] + weight_offset).
// Bindings: 0 x f32 [n_rows, n_cols] read | 1 w f32 [n_cols] read | 2 y f32 [n_rows, n_cols] write
// Push: n_rows, n_cols, eps, weight_offset. Spec: 0 = workgroup size (power of two <= 1024).
// Grid: n_rows x 1 x 1 (one workgroup per row; fp32 partial sums reduced in shared memory).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push {
  uint n_rows;
  uint n_cols;
  float eps;
  float weight_offset;
} p;

shared float partial[1024];

void main() {
  uint row = gl_WorkGroupID.x;
  uint tid = gl_LocalInvocationID.x;
  uint wg = gl_WorkGroupSize.x;
  uint base = row * p.n_cols;
  float s = 0.0;
  for (uint c = tid; c < p.n_cols; c += wg) s += x[base + c] * x[base + c];
  partial[tid] = s;
  barrier();
  for (uint stride = wg / 2; stride > 0; stride /= 2) {
    if (tid < stride) partial[tid] += partial[tid + stride];
    barrier();
  }
  float scale = inversesqrt(partial[0] / float(p.n_cols) + p.eps);
  for (uint c = tid; c < p.n_cols; c += wg) y[base + c] = x[base + c] * scale * (w[c] + p.weight_offset);
}
