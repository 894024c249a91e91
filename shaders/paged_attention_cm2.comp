#version 450
// paged_attention_cm2: the prefill form of paged_attention.comp with VK_NV_cooperative_matrix2
// (workgroup-scope matrices, tensor loads, row reductions, per-element operations). Same contract
// and bindings (runtime/ops/paged_attention.h). Split (n_split > 1): workgroup z covers key tiles
// [z split_tiles, (z + 1) split_tiles) of its head and dst is paged_attention_combine.comp's
// scratch (O unnormalised, then m and l per row); else dst is the normalised output.
// A workgroup owns BR query rows (row = i * group + g) of KV head h. Keys come in tiles of BC = 32
// rows, one paged block each, read with tensor loads (rows past the head's length read as zeros).
// Per tile: S = Q K^T, soft-cap and mask per element, then the online softmax on whole matrices
// (row maxima by reduction, m and l kept as BR x BC matrices whose columns repeat the row's
// value, P to f16 as the A operand of P V and of P 1 for the row sums, O rescaled per row).
// Q is rounded to f16 after scaling (staged once through shared memory: its rows are not
// uniformly strided), P to f16; S, O, m and l stay f32.
// Bindings: 0 q f32 [n_q, n_heads, HD] | 1 q_pos i32 [n_q] | 2 k_pool f16 [n_slots, HD]
//           3 v_pool (same) | 4 pos_pool i32 [n_slots] | 5 block_table i32 [n_kv_heads, max_blocks]
//           6 lens i32 [n_kv_heads] | 7 dst f32 [n_q, n_heads, HD]
// Push: n_q, n_heads, group, max_blocks, window, n_split, scale, softcap, split_tiles.
// Spec: 0 = workgroup size (one of the device's workgroup-scope sizes), 1 = HD (a multiple of the
//       device's granularities), 2 = BR (likewise), 3 = SORTED (1: positions increase along
//       each head's rows, so the key loop stops at the first tile past every query of the
//       workgroup, skips tiles before a sliding window and masks only where needed), 4 = HOIST (1:
//       V's tile is loaded with K's at the start of a step, so that both loads are in flight
//       together, at the cost of V's registers during the softmax; runtime/ops/paged_attention.cpp
//       has the measurements).
// Grid: (ceil(n_q * group / BR), n_kv_heads, n_split).
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int32 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint HD = 128;
layout(constant_id = 2) const uint BR = 64;
layout(constant_id = 3) const uint SORTED = 0;
layout(constant_id = 4) const uint HOIST = 0;
const uint BC = 32u;  // keys per tile: one paged block
const int INT_MAX = 2147483647, INT_MIN = -2147483647 - 1;
#define NEG_INF uintBitsToFloat(0xFF800000u)
const float M_INIT = -1.0e30;  // finite: exp(m_old - m) stays a number on fully masked rows

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer QP { int q_pos[]; };
layout(std430, binding = 2) readonly buffer KP { float16_t k_pool[]; };
layout(std430, binding = 3) readonly buffer VP { float16_t v_pool[]; };
layout(std430, binding = 4) readonly buffer PP { int pos_pool[]; };
layout(std430, binding = 5) readonly buffer BT { int block_table[]; };
layout(std430, binding = 6) readonly buffer LN { int lens[]; };
layout(std430, binding = 7) writeonly buffer DST { float dst[]; };
layout(push_constant) uniform Push {
  uint n_q;
  uint n_heads;
  uint group;
  uint max_blocks;
  int window;
  uint n_split;
  float scale;
  float softcap;
  uint split_tiles;
} p;

shared uvec4 kv[BR * (HD / 8u + 1u)];  // the staged queries (include/attn_coopmat.glsl)
#include "attn_coopmat.glsl"

#define MAT_S coopmat<float, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseAccumulator>
#define MAT_O coopmat<float, gl_ScopeWorkgroup, BR, HD, gl_MatrixUseAccumulator>
#define MAT_Q coopmat<float16_t, gl_ScopeWorkgroup, BR, HD, gl_MatrixUseA>
#define MAT_P coopmat<float16_t, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseA>
#define MAT_KT coopmat<float16_t, gl_ScopeWorkgroup, HD, BC, gl_MatrixUseB>
#define MAT_V coopmat<float16_t, gl_ScopeWorkgroup, BC, HD, gl_MatrixUseB>
#define MAT_ONES coopmat<float16_t, gl_ScopeWorkgroup, BC, BC, gl_MatrixUseB>

bool visible(int kp, int qp) { return kp <= qp && (p.window <= 0 || qp - kp < p.window); }

// Element (r, c) of S: query row row0 + r against key c of the tile at slot0 (valid keys).
float mask_score(const in uint32_t r, const in uint32_t c, const in float s, const in uint row0,
                 const in uint slot0, const in uint valid) {
  const uint row = row0 + r;
  const int qp = row < p.n_q * p.group ? q_pos[row / p.group] : INT_MIN;
  const int kp = c < valid ? pos_pool[slot0 + c] : INT_MAX;
  const float v = p.softcap > 0.0 ? p.softcap * tanh(s / p.softcap) : s;
  return visible(kp, qp) ? v : NEG_INF;
}
float soft_cap(const in uint32_t r, const in uint32_t c, const in float s) {
  return p.softcap * tanh(s / p.softcap);
}
float exp_of(const in uint32_t r, const in uint32_t c, const in float x) { return exp(x); }
float max_of(const in uint32_t r, const in uint32_t c, const in float a, const in float b) {
  return max(a, b);
}
float max_reduce(const in float a, const in float b) { return max(a, b); }
float smear(const in float a, const in float b) { return a; }

float store_out(const in uint32_t r, const in uint32_t c, const in float v, const in uint row0,
                const in uint h) {
  const uint row = row0 + r;
  if (row < p.n_q * p.group) dst[q_base(h, row) + c] = v;
  return v;
}

// Split: this workgroup's share of the combine's scratch, O [n_split, n_q * n_heads, HD] and then
// (m, l) [n_split, n_q * n_heads, 2].
float store_part(const in uint32_t r, const in uint32_t c, const in float v, const in uint row0,
                 const in uint h) {
  const uint row = row0 + r;
  if (row < p.n_q * p.group) dst[gl_WorkGroupID.z * p.n_q * p.n_heads * HD + q_base(h, row) + c] = v;
  return v;
}
float store_ml(const in uint32_t r, const in uint32_t c, const in float v, const in uint row0,
               const in uint h, const in uint which) {
  const uint row = row0 + r, n_rows = p.n_q * p.n_heads;
  if (c == 0u && row < p.n_q * p.group)
    dst[p.n_split * n_rows * HD + (gl_WorkGroupID.z * n_rows + q_base(h, row) / HD) * 2u + which] = v;
  return v;
}

void main() {
  const uint h = gl_WorkGroupID.y;
  const uint n_rows = p.n_q * p.group, row0 = gl_WorkGroupID.x * BR;
  if (row0 >= n_rows) return;  // whole workgroup

  // Scaled f16 queries through shared memory into the A operand.
  stage_q(h, row0, n_rows, 0u, BR);
  barrier();
  MAT_Q qm;
  coopMatLoad(qm, kv, 0, LD, gl_CooperativeMatrixLayoutRowMajor);

  // The workgroup's query positions (every invocation computes the same).
  int qmin = INT_MAX, qmax = INT_MIN;
  const uint i_last = (min(row0 + BR, n_rows) - 1u) / p.group;
  for (uint i = row0 / p.group; i <= i_last; ++i) qmin = min(qmin, q_pos[i]), qmax = max(qmax, q_pos[i]);

  const uint len = uint(clamp(lens[h], 0, int(p.max_blocks * BC)));
  MAT_O o = MAT_O(0.0);
  MAT_S m = MAT_S(M_INIT), l = MAT_S(0.0);
  const MAT_ONES ones = MAT_ONES(1.0);
  tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);
  tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lkv =
      createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);

  const uint t_begin = gl_WorkGroupID.z * p.split_tiles * BC;
  const uint t_end =  // the last share runs to the head's end whatever max_rows said
      gl_WorkGroupID.z + 1u < p.n_split ? min(len, t_begin + p.split_tiles * BC) : len;
  for (uint t0 = t_begin; t0 < t_end; t0 += BC) {
    const uint slot0 = uint(block_table[h * p.max_blocks + t0 / BC]) * BC;
    const uint valid = min(BC, len - t0);
    bool full = false;  // every row sees every key of the tile
    if (SORTED != 0u) {
      const int first = pos_pool[slot0], last = pos_pool[slot0 + valid - 1u];
      if (first > qmax) break;                                  // this and later tiles unseen
      if (p.window > 0 && qmin - last >= p.window) continue;   // before everyone's window
      full = valid == BC && last <= qmin && (p.window <= 0 || qmax - first < p.window);
    }
    // The tile's rows of K and V, (valid, HD) from slot0: rows past `valid` read as zeros.
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lt =
        setTensorLayoutDimensionNV(lkv, valid, HD);
    lt = setTensorLayoutStrideNV(lt, HD, 1);
    MAT_KT kt;
    coopMatLoadTensorNV(kt, k_pool, slot0 * HD, sliceTensorLayoutNV(lt, 0, BC, 0, HD), transposed);
    MAT_V v;
    if (HOIST != 0u)
      coopMatLoadTensorNV(v, v_pool, slot0 * HD, sliceTensorLayoutNV(lt, 0, BC, 0, HD));
    MAT_S s = coopMatMulAdd(qm, kt, MAT_S(0.0));
    if (!full)
      coopMatPerElementNV(s, s, mask_score, row0, slot0, valid);
    else if (p.softcap > 0.0)
      coopMatPerElementNV(s, s, soft_cap);

    // m_new = max(m, rowmax(S)); P = e^(S - m_new); l = e^(m - m_new) l + rowsum(P);
    // O = e^(m - m_new) O + P V.
    MAT_S rmax, m_old = m, pm, alpha;
    coopMatReduceNV(rmax, s, gl_CooperativeMatrixReduceRowNV, max_reduce);
    coopMatPerElementNV(m, rmax, max_of, m_old);
    coopMatPerElementNV(pm, s - m, exp_of);
    coopMatPerElementNV(alpha, m_old - m, exp_of);
    const MAT_P pa = MAT_P(pm);
    l = alpha * l + coopMatMulAdd(pa, ones, MAT_S(0.0));
    if (HOIST == 0u)
      coopMatLoadTensorNV(v, v_pool, slot0 * HD, sliceTensorLayoutNV(lt, 0, BC, 0, HD));
    MAT_O alpha_o;
    coopMatReduceNV(alpha_o, alpha, gl_CooperativeMatrixReduceRowNV, smear);
    o = coopMatMulAdd(pa, v, o * alpha_o);
  }

  if (p.n_split > 1u) {  // m stays M_INIT (the combine's "no key") where the share saw none
    coopMatPerElementNV(o, o, store_part, row0, h);
    coopMatPerElementNV(m, m, store_ml, row0, h, 0u);
    coopMatPerElementNV(l, l, store_ml, row0, h, 1u);
    return;
  }
  MAT_O inv_l;
  coopMatReduceNV(inv_l, l, gl_CooperativeMatrixReduceRowNV, smear);
  [[unroll]] for (uint i = 0; i < inv_l.length(); ++i)
    inv_l[i] = inv_l[i] > 0.0 ? 1.0 / inv_l[i] : 0.0;
  o = o * inv_l;
  coopMatPerElementNV(o, o, store_out, row0, h);
}
