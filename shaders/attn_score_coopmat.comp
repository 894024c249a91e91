#version 450
// attn_score_coopmat: attn_score.comp on tensor cores (VK_NV_cooperative_matrix, or
// VK_KHR_cooperative_matrix with COOPMAT_KHR: include/coopmat.glsl; 16x16x16 f16 x f16 -> f32);
// same contract, bindings and push constants (runtime/ops/paged_attention.h).
// Query i of head hq sees key rows K_i = [0, n_sink) U [t0, t1) U [s0, s0 + i] of KV head h.
//  PASS_LSE: lse[i, hq] = log sum_{k in K_i} exp(scale q_i . k). A workgroup owns 16 NSG query
//            rows (row = i * group + g), 16 per subgroup with their Q fragments in registers, and
//            walks the key units u (sinks, then the chunk, then the input rows up to its last
//            query) in tiles of 32; S = Q K^T on the tensor cores, then an exact online max / sum
//            per row in registers (two lanes per row, merged at the end).
//            It also writes the scaled f16 queries it staged to q16, for PASS_MAX.
//  PASS_MAX: score[h, j - t0] = max_{g, i} exp(scale q_i . k_j - lse[i, h * group + g]) for
//            j in [t0, t1) (every query sees the whole chunk: no mask). A workgroup owns 16 NSG
//            chunk rows, 16 per subgroup as A fragments in registers, and walks all query rows in
//            blocks of 64 (the next block's f16 rows and lse load into registers during the
//            math): S^T = K Q^T on the tensor cores, column maxima of s - lse in registers, one
//            exp per chunk row at the end (exp is increasing).
// Q is rounded to f16 after scaling; S, the sums and lse stay f32. Quantised keys (q8_0, q4_0)
// are read in their stored form and dequantised (in f32, then rounded to f16) as they are written
// to shared memory.
// Bindings: 0 q f32 [n_q, n_heads, HD] | 1 k_pool KTYPE [n_slots, HD] (uvec4)
//           2 block_table i32 [n_kv_heads, max_blocks] | 3 lse f32 [n_q, n_heads]
//           4 PASS_LSE: q16 f16 [n_q, n_heads, HD] (uvec4) write; PASS_MAX: score f32
//           [n_kv_heads, t1 - t0] write | 5 PASS_MAX: q16 read
// Push: n_q, n_heads, group, max_blocks, n_sink, t0, t1, s0, scale.
// Spec: 0 = workgroup size (32 * NSG: subgroups of 32), 1 = HD (multiple of 16, <= 128), 2 = NSG,
//       3 = KTYPE (include/kv_quant.glsl: 0 f16, 1 q8_0, 2 q4_0; quantised: HD % 32 == 0).
// Grid: PASS_LSE (ceil(n_q * group / (16 NSG)), n_kv_heads); PASS_MAX (ceil((t1 - t0) /
// (16 NSG)), n_kv_heads).
#include "common.glsl"
#include "coopmat.glsl"
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint HD = 128;
layout(constant_id = 2) const uint NSG = 8;
layout(constant_id = 3) const uint KTYPE = 0;
const uint RT = 16u * NSG;  // rows (queries or keys) a workgroup owns
const uint KT = 32u;        // PASS_LSE: keys per tile
const uint QB = 64u;        // PASS_MAX: query rows per block

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer KP { uvec4 k_pool[]; };
layout(std430, binding = 2) readonly buffer BT { int block_table[]; };
#if defined(PASS_LSE)
layout(std430, binding = 3) writeonly buffer LSE { float lse[]; };
layout(std430, binding = 4) writeonly buffer Q16 { uvec4 q16[]; };
#else
layout(std430, binding = 3) readonly buffer LSE { float lse[]; };
layout(std430, binding = 4) writeonly buffer SCORE { float score[]; };
layout(std430, binding = 5) readonly buffer Q16 { uvec4 q16[]; };
#endif
layout(push_constant) uniform Push {
  uint n_q;
  uint n_heads;
  uint group;
  uint max_blocks;
  uint n_sink;
  uint t0;
  uint t1;
  uint s0;
  float scale;
} p;

#if defined(PASS_LSE)
shared uvec4 kv[KT * (HD / 8u + 1u)];  // the key tile; first the queries, KT rows a round
#else
shared uvec4 kv[QB * (HD / 8u + 1u)];  // the chunk rows, then one query block at a time
#endif
#include "attn_coopmat.glsl"
#include "kv_quant.glsl"
KVQ_DEFINE_CHUNK(k_chunk, k_pool, KTYPE, HD)

#if defined(PASS_LSE)
shared float ss[NSG * 16u * KT];  // per subgroup: S (16 x KT)
shared int kcaus[KT];  // -2: no key; -1: sink or chunk key (seen by all); c >= 0: input row c
const uint K_N = (KT * HD8 + WG - 1u) / WG;
uvec4 rk[K_N];  // as stored (kvq_f16x8 at staging)
int rcaus;

// Head row of key unit u: sinks, then the chunk, then the reconstruction input.
uint unit_row(uint u) {
  const uint m_t = p.t1 - p.t0;
  return u < p.n_sink ? u : u < p.n_sink + m_t ? p.t0 + (u - p.n_sink) : p.s0 + (u - p.n_sink - m_t);
}

void fetch_tile(uint h, uint u0, uint n_keys) {
  const uint tid = gl_LocalInvocationID.x, m_t = p.t1 - p.t0;
  if (tid < KT) {
    const uint u = u0 + tid;
    rcaus = u >= n_keys ? -2 : u < p.n_sink + m_t ? -1 : int(u - p.n_sink - m_t);
  }
  [[unroll]] for (uint i = 0; i < K_N; ++i) {
    const uint e = tid + i * WG, j = e / HD8, c = e % HD8, u = u0 + j;
    rk[i] = uvec4(0u);
    if (e < KT * HD8 && u < n_keys) rk[i] = k_chunk(kv_slot(h, unit_row(u)), c);
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x, h = gl_WorkGroupID.y, sg = gl_SubgroupID;
  const uint lane = gl_SubgroupInvocationID;
  const uint n_rows = p.n_q * p.group, row0 = gl_WorkGroupID.x * RT;
  CM_A qa[HD / 16u];
  for (uint r0 = 0; r0 < RT; r0 += KT) {
    stage_q(h, row0, n_rows, r0, KT);
    barrier();
    if (sg * 16u >= r0 && sg * 16u < r0 + KT)
      [[unroll]] for (uint c = 0; c < HD / 16u; ++c)
        CM_LOAD_ROW(qa[c], kv, (sg * 16u - r0) * LD + 2u * c, LD);
    for (uint e = tid; e < KT * HD8; e += WG) {  // the f16 rows for PASS_MAX
      const uint row = row0 + r0 + e / HD8;
      if (row < n_rows) q16[q_base(h, row) / 8u + e % HD8] = kv[(e / HD8) * LD + e % HD8];
    }
    barrier();
  }
  const uint i_max = (min(row0 + RT, n_rows) - 1u) / p.group;
  const uint n_keys = p.n_sink + (p.t1 - p.t0) + i_max + 1u;
  // Lane: row r = lane % 16 of the subgroup's 16, keys [half_ * 16, half_ * 16 + 16) of a tile.
  const uint r = lane % 16u, half_ = lane / 16u, row = row0 + sg * 16u + r;
  const int qi = row < n_rows ? int(row / p.group) : -3;  // -3: padding row, sees nothing
  float m = NEG_BIG, l = 0.0;
  fetch_tile(h, 0u, n_keys);
  for (uint u0 = 0; u0 < n_keys; u0 += KT) {
    if (tid < KT) kcaus[tid] = rcaus;
    [[unroll]] for (uint i = 0; i < K_N; ++i) {
      const uint e = tid + i * WG;
      if (e < KT * HD8) kv[(e / HD8) * LD + e % HD8] = kvq_f16x8(KTYPE, rk[i]);
    }
    barrier();
    if (u0 + KT < n_keys) fetch_tile(h, u0 + KT, n_keys);  // in flight during the math below
    [[unroll]] for (uint j = 0; j < KT / 16u; ++j) {
      CM_ACC s = CM_ACC(0.0);
      [[unroll]] for (uint c = 0; c < HD / 16u; ++c) {
        CM_B kb;
        CM_LOAD_COL(kb, kv, (j * 16u) * LD + 2u * c, LD);
        s = CM_MUL_ADD(qa[c], kb, s);
      }
      CM_STORE_ROW(s, ss, sg * 16u * KT + j * 16u, KT);
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    float e[16];
    float tm = NEG_BIG;
    [[unroll]] for (uint i = 0; i < 16u; ++i) {
      const uint j = half_ * 16u + i;
      const int kc = kcaus[j];
      e[i] = (kc != -2 && kc <= qi) ? ss[(sg * 16u + r) * KT + j] : NEG_BIG;
      tm = max(tm, e[i]);
    }
    if (tm > 0.5 * NEG_BIG) {
      const float m_new = max(m, tm);
      float sum = 0.0;
      [[unroll]] for (uint i = 0; i < 16u; ++i) sum += e[i] > 0.5 * NEG_BIG ? exp(e[i] - m_new) : 0.0;
      l = l * exp(m - m_new) + sum;  // m = NEG_BIG: exp(-huge) = 0 and l = 0 anyway
      m = m_new;
    }
    barrier();  // kv and kcaus are restaged next
  }
  const float m2 = subgroupShuffleXor(m, 16u), l2 = subgroupShuffleXor(l, 16u);
  const float mm = max(m, m2);
  const float ll = (l > 0.0 ? l * exp(m - mm) : 0.0) + (l2 > 0.0 ? l2 * exp(m2 - mm) : 0.0);
  if (half_ == 0u && row < n_rows)
    lse[q_base(h, row) / HD] = ll > 0.0 ? mm + log(ll) : -NEG_BIG;
}

#else  // PASS_MAX
shared float ss[NSG * 16u * QB];  // per subgroup: S^T (16 chunk rows x QB query rows)
shared float rlse[QB];
const uint Q_N = (QB * HD8 + WG - 1u) / WG;
uvec4 rq[Q_N];  // the next query block's f16 rows, in flight during the math
float rl;       // and its lse (threads < QB)

void fetch_q(uint h, uint b0, uint n_rows) {
  const uint tid = gl_LocalInvocationID.x;
  [[unroll]] for (uint i = 0; i < Q_N; ++i) {
    const uint e = tid + i * WG, row = b0 + e / HD8;
    rq[i] = (e < QB * HD8 && row < n_rows) ? q16[q_base(h, row) / 8u + e % HD8] : uvec4(0u);
  }
  if (tid < QB) rl = b0 + tid < n_rows ? lse[q_base(h, b0 + tid) / HD] : -NEG_BIG;
}

void main() {
  const uint tid = gl_LocalInvocationID.x, h = gl_WorkGroupID.y, sg = gl_SubgroupID;
  const uint lane = gl_SubgroupInvocationID;
  const uint m_t = p.t1 - p.t0, j0 = gl_WorkGroupID.x * RT, n_rows = p.n_q * p.group;
  // This subgroup's 16 chunk rows as A fragments, staged QB rows a round.
  CM_A ka[HD / 16u];
  for (uint r0 = 0; r0 < RT; r0 += QB) {
    for (uint e = tid; e < QB * HD8; e += WG) {
      const uint j = e / HD8, c = e % HD8, jj = j0 + r0 + j;
      kv[j * LD + c] = jj < m_t ? kvq_f16x8(KTYPE, k_chunk(kv_slot(h, p.t0 + jj), c)) : uvec4(0u);
    }
    barrier();
    if (sg * 16u >= r0 && sg * 16u < r0 + QB)
      [[unroll]] for (uint c = 0; c < HD / 16u; ++c)
        CM_LOAD_ROW(ka[c], kv, (sg * 16u - r0) * LD + 2u * c, LD);
    barrier();
  }
  // Lane: chunk row r = lane % 16, query rows [half_ * QB/2, half_ * QB/2 + QB/2) of a block.
  const uint r = lane % 16u, half_ = lane / 16u;
  float cm = NEG_BIG;  // max of s - lse so far
  fetch_q(h, 0u, n_rows);
  for (uint b0 = 0; b0 < n_rows; b0 += QB) {
    [[unroll]] for (uint i = 0; i < Q_N; ++i) {
      const uint e = tid + i * WG;
      if (e < QB * HD8) kv[(e / HD8) * LD + e % HD8] = rq[i];
    }
    if (tid < QB) rlse[tid] = rl;
    barrier();
    if (b0 + QB < n_rows) fetch_q(h, b0 + QB, n_rows);
    [[unroll]] for (uint f = 0; f < QB / 16u; ++f) {
      CM_ACC s = CM_ACC(0.0);
      [[unroll]] for (uint c = 0; c < HD / 16u; ++c) {
        CM_B qb;
        CM_LOAD_COL(qb, kv, (f * 16u) * LD + 2u * c, LD);
        s = CM_MUL_ADD(ka[c], qb, s);
      }
      CM_STORE_ROW(s, ss, sg * 16u * QB + f * 16u, QB);
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    for (uint i = 0; i < QB / 2u; ++i) {
      const uint qr = half_ * (QB / 2u) + i;
      cm = max(cm, ss[(sg * 16u + r) * QB + qr] - rlse[qr]);
    }
    barrier();  // kv and rlse are restaged next
  }
  cm = max(cm, subgroupShuffleXor(cm, 16u));
  const uint j = j0 + sg * 16u + r;
  if (half_ == 0u && j < m_t) score[h * m_t + j] = cm > 0.5 * NEG_BIG ? exp(cm) : 0.0;
}
#endif
