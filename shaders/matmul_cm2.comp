#version 450
// matmul_cm2: y[m, n] = x[m, k] . w[n, k]^T (+ bias[n]) with VK_NV_cooperative_matrix2: one
// workgroup-scope BM x BN accumulator per workgroup, its operands read with tensor loads (the
// driver stages them through shared memory and pipelines them; x rounded to f16 in registers),
// f16 x f16 -> f32. Same contract as matmul.comp for f16 weights (block weights reach it
// dequantised to f16 by dequant_f16.comp): w may be a row chunk of a larger weight, writing y
// columns [col0, col0 + n) of rows ldy wide.
// Bindings: 0 x f32 [m, k] read | 1 w f16 [n, k] read
//           2 bias f32 [col0 + n] read (any buffer when has_bias == 0) | 3 y f32 [m, ldy] write
// Push: m, n, k, has_bias, col0, ldy.
// Spec: 0 = workgroup size (one of the device's workgroup-scope sizes), 1 = BM, 2 = BN, 3 = BK
//       (multiples of the device's granularities: runtime/ops/matmul.cpp), 4 = GROUP_M (raster:
//       tiles are numbered in groups of GROUP_M rows of tiles, m fastest inside a group, so that
//       workgroups running together share their w tiles in L2).
// Grid: gx x gy with gx * gy >= ceil(n / BN) * ceil(m / BM).
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int32 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 128;
layout(constant_id = 3) const uint BK = 32;
layout(constant_id = 4) const uint GROUP_M = 8;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float16_t w[]; };
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

#define MAT_X coopmat<float, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA>
#define MAT_A coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA>
#define MAT_B coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB>
#define MAT_C coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>

// Column c of this tile is output column n0 + c of the chunk: adds its bias.
float add_bias(const in uint32_t r, const in uint32_t c, const in float v, const in uint n0) {
  return v + bias[p.col0 + min(n0 + c, p.n - 1u)];
}

// Tensor loads read elements of the matrix's own type: x comes in as an f32 matrix and is
// rounded to f16 in registers. k % 8 == 0 (the op checks): rows of x and w are 16-byte aligned,
// which the masked strides tell the compiler.
#define K_STEP(LX, LW, K0)                                                        \
  {                                                                               \
    MAT_X xa;                                                                     \
    MAT_B b;                                                                      \
    coopMatLoadTensorNV(xa, x, 0, sliceTensorLayoutNV(LX, m0, BM, K0, BK));       \
    coopMatLoadTensorNV(b, w, 0, sliceTensorLayoutNV(LW, n0, BN, K0, BK), transposed); \
    acc = coopMatMulAdd(MAT_A(xa), b, acc);                                       \
  }

void main() {
  const uint m_tiles = (p.m + BM - 1u) / BM, n_tiles = (p.n + BN - 1u) / BN;
  const uint id = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (id >= m_tiles * n_tiles) return;  // whole workgroup
  const uint group = id / (GROUP_M * n_tiles), first_m = group * GROUP_M;
  const uint g_rows = min(m_tiles - first_m, GROUP_M), in_group = id % (GROUP_M * n_tiles);
  const uint m0 = (first_m + in_group % g_rows) * BM, n0 = (in_group / g_rows) * BN;
  const uint ks = p.k & ~7u;  // == p.k

  // x as (m, k) and w as (n, k), both row-major; w tiles are read transposed (B = w^T).
  tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);
  MAT_C acc = MAT_C(0.0);
  const uint k_full = p.k - p.k % BK;
  // Clamped layouts for the edge tiles and the last partial k tile: reads past m, n or k give
  // zeros.
  tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> cx =
      createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
  tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> cw =
      createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
  cx = setTensorLayoutStrideNV(setTensorLayoutDimensionNV(cx, p.m, p.k), ks, 1);
  cw = setTensorLayoutStrideNV(setTensorLayoutDimensionNV(cw, p.n, p.k), ks, 1);
  if (m0 + BM <= p.m && n0 + BN <= p.n) {
    // Inside on m and n: unclamped loads over whole k tiles, two per step.
    tensorLayoutNV<2> lx = createTensorLayoutNV(2);
    tensorLayoutNV<2> lw = createTensorLayoutNV(2);
    lx = setTensorLayoutStrideNV(setTensorLayoutDimensionNV(lx, p.m, p.k), ks, 1);
    lw = setTensorLayoutStrideNV(setTensorLayoutDimensionNV(lw, p.n, p.k), ks, 1);
    uint k0 = 0;
    for (; k0 + 2u * BK <= k_full; k0 += 2u * BK) {
      K_STEP(lx, lw, k0)
      K_STEP(lx, lw, k0 + BK)
    }
    if (k0 < k_full) K_STEP(lx, lw, k0)
  } else {
    for (uint k0 = 0; k0 < k_full; k0 += BK) K_STEP(cx, cw, k0)
  }
  if (k_full < p.k) K_STEP(cx, cw, k_full)
  if (p.has_bias != 0u) coopMatPerElementNV(acc, acc, add_bias, n0);
  // y as (m, col0 + n) with rows ldy apart: the store drops what lies past the chunk's columns
  // or past m.
  tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> ly =
      createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
  ly = setTensorLayoutDimensionNV(ly, p.m, p.col0 + p.n);
  ly = setTensorLayoutStrideNV(ly, p.ldy, 1);  // ldy need not be a multiple of 4
  coopMatStoreTensorNV(acc, y, 0, sliceTensorLayoutNV(ly, m0, BM, p.col0 + n0, BN));
}
