#version 450
// rms_norm: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * (w[:] + weight_offset), after
// x[r, :] += res[r, :] when has_residual (the residual add fused in front: one pass fewer).
// One workgroup per row. Where n_cols % 4 == 0 and a row fits 4 vec4 per thread, each thread
// loads its vec4s of x and w once up front and keeps them in registers for the second pass (a
// decode step has one row: its time is a few dependent load latencies, not a loop of them; the
// host gives one row a workgroup of up to one vec4 per thread). Otherwise a strided scalar loop.
// Bindings: 0 x f32 [n_rows, n_cols] read (+ write with has_residual) | 1 w f32 [n_cols] read |
//           2 y f32 [n_rows, n_cols] write (may alias x) | 3 res f32 [n_rows, n_cols] read (any
//           buffer without has_residual)
// Variant x8 (WITH_X8): y also rounded to int8 per 32 values (shaders/include/x8.glsl), as
// quantize_x8 would round all n_rows * n_cols values of y afterwards (n_cols % 32 == 0): the row
// goes through shared memory, then one thread per 32-value group. Binding 4 x8 u32
// [k / 4 + k / 16] write, k = n_rows * n_cols; spec 1 = n_cols / 4 (the shared row's size).
// Push: n_rows, n_cols, eps, weight_offset, has_residual.
// Spec: 0 = workgroup size (power of two <= 1024).
#include "common.glsl"
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x_id = 0) in;
#ifdef WITH_X8
layout(constant_id = 1) const uint X8_N4 = 1;
layout(std430, binding = 4) writeonly buffer XQ4 { uvec4 xq4[]; };
layout(std430, binding = 4) writeonly buffer XQ2 { vec2 xds[]; };
shared vec4 ys4[X8_N4];  // this row's y
#define X8_STORE
#include "x8.glsl"
#endif
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 0) buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 1) readonly buffer W4 { vec4 w4[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 3) readonly buffer Res { float res[]; };
layout(std430, binding = 3) readonly buffer Res4 { vec4 res4[]; };
layout(push_constant) uniform Push {
  uint n_rows;
  uint n_cols;
  float eps;
  float weight_offset;
  uint has_residual;
} p;

shared float partial[1024];  // one sum per subgroup (any subgroup size, down to 1)

// The workgroup's sum of s: subgroup sums, then every invocation adds those in order (the same
// order everywhere, so every invocation gets the same bits). One barrier instead of a tree's
// log2(workgroup size): a decode step's single row waits on them.
float row_sum(float s) {
  s = subgroupAdd(s);
  if (subgroupElect()) partial[gl_SubgroupID] = s;
  barrier();
  float t = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; ++i) t += partial[i];
  return t;
}

// y[row, :] (also in ys4) rounded into x8, after every thread wrote its part of ys4.
#ifdef WITH_X8
void store_x8(uint row) {
  barrier();
  const uint n_groups = p.n_cols / 32u;
  for (uint g = gl_LocalInvocationID.x; g < n_groups; g += gl_WorkGroupSize.x) {
    vec4 yv[8];
    [[unroll]] for (uint i = 0; i < 8u; ++i) yv[i] = ys4[8u * g + i];
    uint q[8];
    float dx, s;
    x8_round_32(yv, q, dx, s);
    x8_store(row * n_groups + g, p.n_rows * p.n_cols, q, dx, s);
  }
}
#endif

void main() {
  const uint row = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
  const bool res_on = p.has_residual != 0;
  if (p.n_cols % 4u == 0u && p.n_cols <= 16u * wg) {
    const uint n4 = p.n_cols / 4u, base4 = row * n4;
    vec4 v[4], wv[4];
    float s = 0.0;
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
      const uint c = tid + i * wg;
      // w is loaded with x, not after the reduction: one memory latency less on one row.
      wv[i] = c < n4 ? w4[c] + p.weight_offset : vec4(0.0);
      v[i] = c < n4 ? x4[base4 + c] : vec4(0.0);
      if (res_on && c < n4) {
        v[i] += res4[base4 + c];
        x4[base4 + c] = v[i];
      }
      s += dot(v[i], v[i]);
    }
    const float scale = inversesqrt(row_sum(s) / float(p.n_cols) + p.eps);
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
      const uint c = tid + i * wg;
      if (c < n4) {
        const vec4 yc = v[i] * scale * wv[i];
        y4[base4 + c] = yc;
#ifdef WITH_X8
        ys4[c] = yc;
#endif
      }
    }
#ifdef WITH_X8
    store_x8(row);
#endif
    return;
  }
  const uint base = row * p.n_cols;
  float s = 0.0;
  for (uint c = tid; c < p.n_cols; c += wg) {
    float v = x[base + c];
    if (res_on) {
      v += res[base + c];
      x[base + c] = v;  // read back below by this same invocation only
    }
    s += v * v;
  }
  const float scale = inversesqrt(row_sum(s) / float(p.n_cols) + p.eps);
  for (uint c = tid; c < p.n_cols; c += wg) {
    const float yc = x[base + c] * scale * (w[c] + p.weight_offset);
    y[base + c] = yc;
#ifdef WITH_X8
    ys4[c / 4u][c % 4u] = yc;
#endif
  }
#ifdef WITH_X8
  store_x8(row);
#endif
}
