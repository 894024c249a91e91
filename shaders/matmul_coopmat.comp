#version 450
// matmul_coopmat: y[m, n] = x[m, k] . w[n, k]^T (+ bias[n]) on tensor cores (VK_NV_cooperative_matrix,
// or VK_KHR_cooperative_matrix with COOPMAT_KHR: include/coopmat.glsl; 16x16x16 f16 x f16 -> f32). Same contract as matmul.comp; x tiles are rounded to f16 and w tiles
// dequantised to f16 while staging into shared memory, products accumulate in f32.
// Software pipeline: the next k tile is read from global memory into registers while the tensor
// cores work on the current one, then written to the other half of a double-buffered shared tile,
// so each k step costs one barrier (STAGES == 2); with STAGES == 1 one shared tile is rewritten
// between two barriers, which halves the shared memory, so more workgroups share an SM (the
// faster form for the default tiles: bench/RESULTS.md). Global reads are 16 bytes wide (x as vec4,
// f16/bf16 w as 8 halves).
// Bindings: 0 x f32 [m, k] read | 1 w W_<TYPE> [n, k] read (ggml blocks along k)
//           2 bias f32 [col0 + n] read (any buffer when has_bias == 0) | 3 y f32 [m, ldy] write
// Push: m, n, k, has_bias, col0, ldy (as matmul.comp: w may be a row chunk of a larger weight,
// writing y columns [col0, col0 + n) of rows ldy wide). Needs k % 8 == 0 (block types:
// k % 32 == 0, implied by their blocks).
// Spec: 0 = workgroup size (== subgroup size * SG_M * SG_N), 1 = SG_M, 2 = SG_N (subgroups along
//       m and n), 3 = FM, 4 = FN (16x16 fragments per subgroup along m and n).
//       BM = 16 FM SG_M, BN = 16 FN SG_N; 5 = GROUP_M (raster, below); 6 = STAGES (1 or 2
//       shared tiles); 7 = BK (k per shared tile, 32 or 64).
// Grid: gx x gy with gx * gy >= ceil(n / BN) * ceil(m / BM); tiles are numbered in groups of
// GROUP_M rows of tiles, m fastest inside a group, so that workgroups running at the same time
// share their w tiles (and a few x tiles) in L2 instead of streaming all of w from memory.
#include "common.glsl"
#include "coopmat.glsl"
#extension GL_KHR_shader_subgroup_basic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint SG_M = 2;
layout(constant_id = 2) const uint SG_N = 2;
layout(constant_id = 3) const uint FM = 4;
layout(constant_id = 4) const uint FN = 4;
const uint TM = 16, TN = 16, TK = 16;  // one cooperative-matrix product (CM_A, CM_B, CM_ACC)
const uint BM = TM * FM * SG_M, BN = TN * FN * SG_N;
layout(constant_id = 5) const uint GROUP_M = 8;  // tile rows per raster group
layout(constant_id = 6) const uint STAGES = 2;   // shared tiles: 2 double-buffers, 1 rewrites
layout(constant_id = 7) const uint BK = 32;  // k per shared tile: 32 or 64 (whole 16-k steps)
const uint BK8 = BK / 8;  // uvec4 (8 halves) per staged row
const uint LD8 = BK8 + 1; // row stride in uvec4: 16-byte rows, an odd stride skews banks

layout(std430, binding = 0) readonly buffer X { vec4 x4[]; };
#if defined(W_F16) || defined(W_BF16)
layout(std430, binding = 1) readonly buffer W8 { uvec4 w8[]; };  // 8 halves per element
#else
#define W_BINDING 1
#include "dequant.glsl"
#endif
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

// f16 tiles as uvec4 (8 halves): loads take offsets and strides in array elements.
shared uvec4 xs[STAGES * BM * LD8];  // STAGES x [BM][LD8]: x rows, k contiguous (A, row-major)
shared uvec4 ws[STAGES * BN * LD8];  // STAGES x [BN][LD8]: w rows, k contiguous (B = w^T)
shared float cs[SG_M * SG_N * TM * TN];  // per subgroup: one f32 fragment on its way to y

// Per thread and k tile: A_N 8-value chunks of x, B_N 8-value chunks of w.
const uint A_N = (BM * BK8 + WG - 1u) / WG;
const uint B_N = (BN * BK8 + WG - 1u) / WG;

vec4 ra[2u * A_N];
#if defined(W_F16) || defined(W_BF16)
uvec4 rb[B_N];
#else
vec4 rb[2u * B_N];
#endif

void load_global(uint m0, uint n0, uint k0) {
  const uint tid = gl_LocalInvocationID.x, k4 = p.k / 4u;
  [[unroll]] for (uint i = 0; i < A_N; ++i) {
    const uint idx = tid + i * WG, r = idx / BK8, c = idx % BK8, row = m0 + r, kk = k0 + 8u * c;
    const bool ok = idx < BM * BK8 && row < p.m && kk < p.k;
    ra[2u * i] = ok ? x4[row * k4 + kk / 4u] : vec4(0.0);
    ra[2u * i + 1u] = ok ? x4[row * k4 + kk / 4u + 1u] : vec4(0.0);
  }
  [[unroll]] for (uint i = 0; i < B_N; ++i) {
    const uint idx = tid + i * WG, r = idx / BK8, c = idx % BK8, row = n0 + r, kk = k0 + 8u * c;
    const bool ok = idx < BN * BK8 && row < p.n && kk < p.k;
#if defined(W_F16) || defined(W_BF16)
    rb[i] = ok ? w8[(row * p.k + kk) / 8u] : uvec4(0u);
#else
    const uint base = w_row_base(min(row, p.n - 1u), p.k);
    rb[2u * i] = ok ? w_load4(base, kk, p.k) : vec4(0.0);
    rb[2u * i + 1u] = ok ? w_load4(base, kk + 4u, p.k) : vec4(0.0);
#endif
  }
}

uvec4 pack8(vec4 a, vec4 b) {
  return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
#if defined(W_BF16)
// Two bf16 in one uint -> the same two values as packed f16.
uint bf16x2_to_f16x2(uint v) { return packHalf2x16(bf16_pair(v)); }
#endif

void store_shared(uint buf) {
  const uint tid = gl_LocalInvocationID.x;
  [[unroll]] for (uint i = 0; i < A_N; ++i) {
    const uint idx = tid + i * WG, r = idx / BK8, c = idx % BK8;
    if (idx < BM * BK8) xs[(buf * BM + r) * LD8 + c] = pack8(ra[2u * i], ra[2u * i + 1u]);
  }
  [[unroll]] for (uint i = 0; i < B_N; ++i) {
    const uint idx = tid + i * WG, r = idx / BK8, c = idx % BK8;
    if (idx >= BN * BK8) continue;
    const uint at = (buf * BN + r) * LD8 + c;
#if defined(W_F16)
    ws[at] = rb[i];
#elif defined(W_BF16)
    ws[at] = uvec4(bf16x2_to_f16x2(rb[i].x), bf16x2_to_f16x2(rb[i].y), bf16x2_to_f16x2(rb[i].z),
                   bf16x2_to_f16x2(rb[i].w));
#else
    ws[at] = pack8(rb[2u * i], rb[2u * i + 1u]);
#endif
  }
}

// Writes fragment acc (rows r0.., cols c0.. of this chunk's output columns, at col0 of y): straight
// to y when it lies inside, there is no bias and rows of y are 16-byte aligned (ldy % 4 == 0 and
// col0 % 4 == 0: both extensions require the stride aligned to min(16 bytes, a row of the
// fragment)), else through this subgroup's slice of cs with bounds and bias.
void store_fragment(CM_ACC acc, uint r0, uint c0) {
  if (p.has_bias == 0u && (p.ldy & 3u) == 0u && (p.col0 & 3u) == 0u && r0 + TM <= p.m &&
      c0 + TN <= p.n) {
    CM_STORE_ROW(acc, y, r0 * p.ldy + p.col0 + c0, p.ldy);
    return;
  }
  const uint slot = gl_SubgroupID * TM * TN;
  CM_STORE_ROW(acc, cs, slot, TN);
  subgroupMemoryBarrierShared();
  subgroupBarrier();
  for (uint e = gl_SubgroupInvocationID; e < TM * TN; e += gl_SubgroupSize) {
    const uint row = r0 + e / TN, col = c0 + e % TN;
    if (row < p.m && col < p.n)
      y[row * p.ldy + p.col0 + col] = cs[slot + e] + (p.has_bias != 0 ? bias[p.col0 + col] : 0.0);
  }
  subgroupBarrier();  // the slot is rewritten by the next fragment
}

void main() {
  const uint sg_m = gl_SubgroupID % SG_M, sg_n = gl_SubgroupID / SG_M;
  const uint m_tiles = (p.m + BM - 1u) / BM, n_tiles = (p.n + BN - 1u) / BN;
  const uint id = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (id >= m_tiles * n_tiles) return;  // whole workgroup: no barrier divergence
  const uint group = id / (GROUP_M * n_tiles), first_m = group * GROUP_M;
  const uint g_rows = min(m_tiles - first_m, GROUP_M), in_group = id % (GROUP_M * n_tiles);
  const uint m0 = (first_m + in_group % g_rows) * BM, n0 = (in_group / g_rows) * BN;
  CM_ACC acc[FM * FN];
  [[unroll]] for (uint i = 0; i < FM * FN; ++i) acc[i] = CM_ACC(0.0);

  load_global(m0, n0, 0u);
  store_shared(0u);
  barrier();
  uint buf = 0u;
  for (uint k0 = 0; k0 < p.k; k0 += BK) {
    const bool more = k0 + BK < p.k;
    if (more) load_global(m0, n0, k0 + BK);
    [[unroll]] for (uint kk = 0; kk < BK; kk += TK) {
      CM_A a[FM];
      CM_B b[FN];
      [[unroll]] for (uint i = 0; i < FM; ++i)
        CM_LOAD_ROW(a[i], xs, (buf * BM + (sg_m * FM + i) * TM) * LD8 + kk / 8u, LD8);
      [[unroll]] for (uint j = 0; j < FN; ++j)
        CM_LOAD_COL(b[j], ws, (buf * BN + (sg_n * FN + j) * TN) * LD8 + kk / 8u, LD8);
      [[unroll]] for (uint i = 0; i < FM; ++i)
        [[unroll]] for (uint j = 0; j < FN; ++j)
          acc[i * FN + j] = CM_MUL_ADD(a[i], b[j], acc[i * FN + j]);
    }
    if (STAGES == 1u) {
      barrier();  // everyone is done reading the tile before it is rewritten
      if (more) store_shared(0u);
    } else {
      if (more) store_shared(buf ^ 1u);
      buf ^= 1u;
    }
    barrier();
  }

  [[unroll]] for (uint i = 0; i < FM; ++i)
    [[unroll]] for (uint j = 0; j < FN; ++j)
      store_fragment(acc[i * FN + j], m0 + (sg_m * FM + i) * TM, n0 + (sg_n * FN + j) * TN);
}
