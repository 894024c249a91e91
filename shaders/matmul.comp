#version 450
// matmul: y[m, n] = x[m, k] . w[n, k]^T (+ bias[n]); w in any weight type, dequantised while
// loading shared-memory tiles; each thread accumulates a 4x4 register block in fp32.
// Bindings: 0 x f32 [m, k] read | 1 w W_<TYPE> [n, k] read (ggml blocks along k)
//           2 bias f32 [col0 + n] read (any buffer when has_bias == 0) | 3 y f32 [m, ldy] write
// Push: m, n, k, has_bias, col0, ldy: w may be a row chunk of a larger weight (bindings within
// maxStorageBufferRange); it writes y columns [col0, col0 + n) of rows ldy wide, bias from col0.
// Spec: 0 = workgroup size (== BM/4 * BN/4), 1 = BM (x rows per tile), 2 = BN (w rows per tile).
// Grid: ceil(n / BN) x ceil(m / BM) x 1.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
const uint BK = 32;  // k per tile: a multiple of 4, divides the 32/256 block sizes

layout(std430, binding = 0) readonly buffer X { float x[]; };
#define W_BINDING 1
#include "dequant.glsl"
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push {
  uint m;
  uint n;
  uint k;
  uint has_bias;
  uint col0;
  uint ldy;
} p;

shared float xs[BK * BM];  // [BK][BM], k-major so the inner loop reads contiguous rows
shared float ws[BK * BN];  // [BK][BN]

void load_tiles(uint m0, uint n0, uint k0) {
  const uint wg = gl_WorkGroupSize.x, tid = gl_LocalInvocationID.x;
  for (uint idx = tid; idx < BM * (BK / 4); idx += wg) {
    uint r = idx / (BK / 4), c = (idx % (BK / 4)) * 4, row = m0 + r, kk = k0 + c;
    vec4 v = vec4(0.0);
    if (row < p.m)
      [[unroll]] for (uint i = 0; i < 4; ++i) v[i] = kk + i < p.k ? x[row * p.k + kk + i] : 0.0;
    [[unroll]] for (uint i = 0; i < 4; ++i) xs[(c + i) * BM + r] = v[i];
  }
  for (uint idx = tid; idx < BN * (BK / 4); idx += wg) {
    uint r = idx / (BK / 4), c = (idx % (BK / 4)) * 4, row = n0 + r, kk = k0 + c;
    vec4 v = vec4(0.0);
    if (row < p.n && kk < p.k) v = w_load4(w_row_base(row, p.k), kk, p.k);
    [[unroll]] for (uint i = 0; i < 4; ++i) ws[(c + i) * BN + r] = v[i];
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint tx = tid % (BN / 4), ty = tid / (BN / 4);  // this thread: cols tx + j*BN/4, rows ty + i*BM/4
  const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
  float acc[4][4];
  [[unroll]] for (uint i = 0; i < 4; ++i)
    [[unroll]] for (uint j = 0; j < 4; ++j) acc[i][j] = 0.0;

  for (uint k0 = 0; k0 < p.k; k0 += BK) {
    load_tiles(m0, n0, k0);
    barrier();
    [[unroll]] for (uint kk = 0; kk < BK; ++kk) {
      float a[4], b[4];
      [[unroll]] for (uint i = 0; i < 4; ++i) a[i] = xs[kk * BM + ty + i * (BM / 4)];
      [[unroll]] for (uint j = 0; j < 4; ++j) b[j] = ws[kk * BN + tx + j * (BN / 4)];
      [[unroll]] for (uint i = 0; i < 4; ++i)
        [[unroll]] for (uint j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    barrier();
  }

  [[unroll]] for (uint i = 0; i < 4; ++i) {
    uint row = m0 + ty + i * (BM / 4);
    if (row >= p.m) continue;
    [[unroll]] for (uint j = 0; j < 4; ++j) {
      uint col = n0 + tx + j * (BN / 4);
      if (col < p.n)
        y[row * p.ldy + p.col0 + col] = acc[i][j] + (p.has_bias != 0 ? bias[p.col0 + col] : 0.0);
    }
  }
}
