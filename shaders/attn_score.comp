#version 450
// attn_score: KVzip reconstruction scoring (ALGORITHMS.md 1.3; runtime/ops/paged_attention.h),
// two passes that never materialise the probability matrix. Query i of head hq sees the key rows
// K_i = [0, n_sink) U [t0, t1) U [s0, s0 + i] of its KV head h (row order of block_table).
//  PASS_LSE: lse[i, hq] = log sum_{k in K_i} exp(scale q_i . k)   (online max / sum)
//  PASS_MAX: score[h, j - t0] = max_{g in group, i} exp(scale q_i . k_j - lse[i, h*group+g]),
//            j in [t0, t1); one workgroup owns KT target rows and loops over all query rows.
// Bindings: 0 q           f32 [n_q, n_heads, head_dim]       read
//           1 k_pool      KTYPE [n_slots, head_dim] (as uvec2) read
//           2 block_table i32 [n_kv_heads, max_blocks]       read
//           3 lse         f32 [n_q, n_heads]                 write (PASS_LSE) / read (PASS_MAX)
//           4 score       f32 [n_kv_heads, t1 - t0]          write (PASS_MAX only)
// Push: n_q, n_heads, group, max_blocks, n_sink, t0, t1, s0, scale.
// Spec: attn_tile.glsl (HD, QT, KT; WG % KT == 0); 3 = KTYPE (shaders/include/kv_quant.glsl: q8_0 /
// q4_0 keys are dequantised into the f16 key tile as it is loaded). Grid: PASS_LSE (ceil(n_q * group / QT),
// n_kv_heads); PASS_MAX (ceil((t1 - t0) / KT), n_kv_heads).
#include "common.glsl"
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer KP { uvec2 k_pool[]; };
layout(std430, binding = 2) readonly buffer BT { int block_table[]; };
#if defined(PASS_LSE)
layout(std430, binding = 3) writeonly buffer LSE { float lse[]; };
#else
layout(std430, binding = 3) readonly buffer LSE { float lse[]; };
layout(std430, binding = 4) writeonly buffer SCORE { float score[]; };
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
#include "attn_tile.glsl"
#include "kv_quant.glsl"
layout(constant_id = 3) const uint KTYPE = 0;
const uint KRB = KVQ_ROW_BYTES(KTYPE, HD);
uint k_word(uint w) { return k_pool[w >> 1u][w & 1u]; }
KVQ_DEFINE_LOAD4(k_load4, k_word)

// Loads key tile row j from head row t (zeros when !valid).
void load_key_row_part(uint h, uint j, uint c, uint t, bool valid) {
  uvec2 b = uvec2(0u);
  if (valid) {
    const uint slot = kv_slot(h, t);
    if (KTYPE == KVT_F16) {
      b = k_pool[slot * HD4 + c];
    } else {
      const vec4 x = k_load4(KTYPE, KRB, slot, 4u * c);
      b = uvec2(packHalf2x16(x.xy), packHalf2x16(x.zw));
    }
  }
  store_key(j, c, b);
}

#if defined(PASS_LSE)
shared int kcaus[KT];  // -2: not a key; -1: sink/chunk key (always visible); c >= 0: input key c
shared float red_m[WG], red_l[WG];  // per-thread partials of one round, merged per row at the end

void main() {
  const uint tid = gl_LocalInvocationID.x, h = gl_WorkGroupID.y;
  const uint n_rows = p.n_q * p.group, row0 = gl_WorkGroupID.x * QT;
  const uint m_t = p.t1 - p.t0;
  const uint i_max = (min(row0 + QT, n_rows) - 1u) / p.group;
  const uint n_keys = p.n_sink + m_t + i_max + 1u;
  load_q_tile(h, row0, n_rows, p.scale);
  // Each thread keeps an online (max, sum) over its own pairs' keys: one exp per score, no
  // shared score tile and no serial per-row pass.
  float tm[NPAIR], tl[NPAIR];
  [[unroll]] for (uint k = 0; k < NPAIR; ++k) tm[k] = NEG_BIG, tl[k] = 0.0;
  for (uint u0 = 0; u0 < n_keys; u0 += KT) {
    barrier();  // previous tile's readers are done
    for (uint e = tid; e < KT * HD4; e += WG) {
      const uint j = e / HD4, c = e % HD4, u = u0 + j;
      uint t = u;
      if (u >= p.n_sink + m_t) t = p.s0 + (u - p.n_sink - m_t);
      else if (u >= p.n_sink) t = p.t0 + (u - p.n_sink);
      load_key_row_part(h, j, c, t, u < n_keys);
      if (c == 0u) kcaus[j] = u >= n_keys ? -2 : u < p.n_sink + m_t ? -1 : int(u - p.n_sink - m_t);
    }
    barrier();
    tile_dot_rows(tid);
    [[unroll]] for (uint k = 0; k < NPAIR; ++k) {
      const uint pi = tid + k * WG;
      const uint r = pi / KT, j = pi % KT;
      const int i = int((row0 + r) / p.group);
      if (pi < QT * KT && kcaus[j] != -2 && kcaus[j] <= i && row0 + r < n_rows) {
        // One exp, no divergence: e = exp(-|s - m|) rescales whichever side is smaller.
        const float s = pair_s[k], e = exp(-abs(s - tm[k]));
        tl[k] = s > tm[k] ? tl[k] * e + 1.0 : tl[k] + e;
        tm[k] = max(tm[k], s);
      }
    }
  }
  // Round k merges the KT partials of rows k * (WG / KT) + [0, WG / KT) (threads tid / KT).
  [[unroll]] for (uint k = 0; k < NPAIR; ++k) {
    barrier();  // previous round's (or the last tile's) readers are done
    red_m[tid] = tm[k], red_l[tid] = tl[k];
    barrier();
    const uint r = k * (WG / KT) + tid, row = row0 + r;
    if (tid < WG / KT && r < QT && row < n_rows) {
      float m = NEG_BIG, l = 0.0;
      for (uint j = 0; j < KT; ++j) m = max(m, red_m[tid * KT + j]);
      for (uint j = 0; j < KT; ++j) {
        const float mj = red_m[tid * KT + j];
        l += mj > 0.5 * NEG_BIG ? exp(mj - m) * red_l[tid * KT + j] : 0.0;
      }
      const uint qrow = (row / p.group) * p.n_heads + h * p.group + row % p.group;
      lse[qrow] = l > 0.0 ? m + log(l) : -NEG_BIG;
    }
  }
}

#else  // PASS_MAX
shared float rlse[QT];
shared float red[WG];

void main() {
  const uint tid = gl_LocalInvocationID.x, h = gl_WorkGroupID.y;
  const uint m_t = p.t1 - p.t0, j0 = gl_WorkGroupID.x * KT;
  const uint n_rows = p.n_q * p.group;
  for (uint e = tid; e < KT * HD4; e += WG) {
    const uint j = e / HD4, c = e % HD4;
    load_key_row_part(h, j, c, p.t0 + j0 + j, j0 + j < m_t);
  }
  float cm = 0.0;  // running column max; this thread's column is tid % KT (WG % KT == 0)
  for (uint row0 = 0; row0 < n_rows; row0 += QT) {
    barrier();  // previous query tile's readers are done
    load_q_tile(h, row0, n_rows, p.scale);
    if (tid < QT) {
      const uint row = row0 + tid;
      rlse[tid] = row < n_rows
                      ? lse[(row / p.group) * p.n_heads + h * p.group + row % p.group]
                      : -NEG_BIG;  // padding rows: exp(. - huge) = 0
    }
    barrier();
    tile_dot_rows(tid);
    [[unroll]] for (uint k = 0; k < NPAIR; ++k) {
      const uint pi = tid + k * WG;
      if (pi < QT * KT) cm = max(cm, exp(pair_s[k] - rlse[pi / KT]));
    }
  }
  red[tid] = cm;
  barrier();
  if (tid < KT && j0 + tid < m_t) {
    float v = 0.0;
    for (uint w = tid; w < WG; w += KT) v = max(v, red[w]);
    score[h * m_t + j0 + tid] = v;
  }
}
#endif
