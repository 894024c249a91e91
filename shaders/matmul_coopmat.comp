#version 450
// matmul_coopmat: y[m, n] = x[m, k] . w[n, k]^T (+ bias[n]) on tensor cores (VK_NV_cooperative_matrix,
// 16x16x16 f16 x f16 -> f32). Same contract as matmul.comp; x tiles are rounded to f16 and w tiles
// dequantised to f16 while staging into shared memory, products accumulate in f32.
// Bindings: 0 x f32 [m, k] read | 1 w W_<TYPE> [n, k] read (ggml blocks along k)
//           2 bias f32 [n] read (any buffer when has_bias == 0) | 3 y f32 [m, n] write
// Push: m, n, k, has_bias. Block types need k % 32 == 0 (their block size already implies it).
// Spec: 0 = workgroup size (== subgroup size * SG_M * SG_N), 1 = SG_M, 2 = SG_N (subgroups along
//       m and n). Each subgroup owns a WM x WN = 32 x 64 block of y, so BM = 32 SG_M, BN = 64 SG_N.
// Grid: ceil(n / BN) x ceil(m / BM) x 1.
#include "common.glsl"
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint SG_M = 4;
layout(constant_id = 2) const uint SG_N = 2;
const uint TM = 16, TN = 16, TK = 16;  // one cooperative-matrix product
const uint WM = 32, WN = 64;           // y block per subgroup: FM x FN fragments
const uint FM = WM / TM, FN = WN / TN;
const uint BM = WM * SG_M, BN = WN * SG_N;
const uint BK = 32;        // k per shared tile: divides every block size (32, 256)
const uint LDS = BK + 8;   // row stride in halves: 80 bytes keeps 16-byte alignment, skews banks

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
} p;

shared float16_t xs[BM * LDS];        // [BM][LDS]: x rows, k contiguous (A, row-major)
shared float16_t ws[BN * LDS];        // [BN][LDS]: w rows, k contiguous (B = w^T, column-major)
shared float cs[SG_M * SG_N * TM * TN];  // per subgroup: one f32 fragment on its way to y

void load_tiles(uint m0, uint n0, uint k0) {
  const uint wg = gl_WorkGroupSize.x, tid = gl_LocalInvocationID.x;
  for (uint idx = tid; idx < BM * (BK / 4); idx += wg) {
    const uint r = idx / (BK / 4), c = (idx % (BK / 4)) * 4, row = m0 + r, kk = k0 + c;
    vec4 v = vec4(0.0);
    if (row < p.m)
      [[unroll]] for (uint i = 0; i < 4; ++i) v[i] = kk + i < p.k ? x[row * p.k + kk + i] : 0.0;
    [[unroll]] for (uint i = 0; i < 4; ++i) xs[r * LDS + c + i] = float16_t(v[i]);
  }
  for (uint idx = tid; idx < BN * (BK / 4); idx += wg) {
    const uint r = idx / (BK / 4), c = (idx % (BK / 4)) * 4, row = n0 + r, kk = k0 + c;
    vec4 v = vec4(0.0);
    if (row < p.n && kk < p.k) v = w_load4(w_row_base(row, p.k), kk, p.k);
    [[unroll]] for (uint i = 0; i < 4; ++i) ws[r * LDS + c + i] = float16_t(v[i]);
  }
}

// Writes fragment acc (rows r0.., cols c0.. of y) through this subgroup's slice of cs, with bounds.
void store_fragment(fcoopmatNV<32, gl_ScopeSubgroup, TM, TN> acc, uint r0, uint c0) {
  const uint slot = gl_SubgroupID * TM * TN;
  coopMatStoreNV(acc, cs, slot, TN, false);
  subgroupMemoryBarrierShared();
  subgroupBarrier();
  for (uint e = gl_SubgroupInvocationID; e < TM * TN; e += gl_SubgroupSize) {
    const uint row = r0 + e / TN, col = c0 + e % TN;
    if (row < p.m && col < p.n)
      y[row * p.n + col] = cs[slot + e] + (p.has_bias != 0 ? bias[col] : 0.0);
  }
  subgroupBarrier();  // the slot is rewritten by the next fragment
}

void main() {
  const uint sg_m = gl_SubgroupID % SG_M, sg_n = gl_SubgroupID / SG_M;
  const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
  fcoopmatNV<32, gl_ScopeSubgroup, TM, TN> acc[FM * FN];
  [[unroll]] for (uint i = 0; i < FM * FN; ++i)
    acc[i] = fcoopmatNV<32, gl_ScopeSubgroup, TM, TN>(0.0);

  for (uint k0 = 0; k0 < p.k; k0 += BK) {
    load_tiles(m0, n0, k0);
    barrier();
    [[unroll]] for (uint kk = 0; kk < BK; kk += TK) {
      fcoopmatNV<16, gl_ScopeSubgroup, TM, TK> a[FM];
      fcoopmatNV<16, gl_ScopeSubgroup, TK, TN> b[FN];
      [[unroll]] for (uint i = 0; i < FM; ++i)
        coopMatLoadNV(a[i], xs, (sg_m * WM + i * TM) * LDS + kk, LDS, false);
      [[unroll]] for (uint j = 0; j < FN; ++j)
        coopMatLoadNV(b[j], ws, (sg_n * WN + j * TN) * LDS + kk, LDS, true);
      [[unroll]] for (uint i = 0; i < FM; ++i)
        [[unroll]] for (uint j = 0; j < FN; ++j)
          acc[i * FN + j] = coopMatMulAddNV(a[i], b[j], acc[i * FN + j]);
    }
    barrier();
  }

  [[unroll]] for (uint i = 0; i < FM; ++i)
    [[unroll]] for (uint j = 0; j < FN; ++j)
      store_fragment(acc[i * FN + j], m0 + sg_m * WM + i * TM, n0 + sg_n * WN + j * TN);
}
