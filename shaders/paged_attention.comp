#version 450
// paged_attention: flash attention (online softmax, f32 accumulation) of query rows over the
// paged, ragged rows of one KV head; causal by position, optional window and tanh soft-cap
// (runtime/ops/paged_attention.h). A workgroup owns QT query rows (row = i * group + g) of KV
// head h and, with split-K, one contiguous share of the head's rows.
// Bindings: 0 q           f32 [n_q, n_heads, head_dim]       read
//           1 q_pos       i32 [n_q]                          read
//           2 k_pool      KTYPE [n_slots, head_dim] (as uvec2) read
//           3 v_pool      VTYPE [n_slots, head_dim] (as uvec2) read
//           4 pos_pool    i32 [n_slots]                      read
//           5 block_table i32 [n_kv_heads, max_blocks]       read
//           6 lens        i32 [n_kv_heads]                   read
//           7 dst         f32 write: n_split == 1: out [n_q, n_heads, head_dim] (normalised);
//                         else scratch for paged_attention_combine: unnormalised sums o
//                         [n_split, n_q * n_heads, head_dim], then (running max m, denominator l)
//                         [n_split, n_q * n_heads, 2].
// Push: n_q, n_heads, group, max_blocks, window, n_split, scale, softcap.
// Spec: attn_tile.glsl (HD, QT, KT); 3 = KTYPE, 4 = VTYPE (shaders/include/kv_quant.glsl): q8_0 /
// q4_0 rows are dequantised as the tile is loaded and kept in the f16 shared tiles like f16 rows.
// Grid: (ceil(n_q * group / QT), n_kv_heads, n_split).
#include "common.glsl"
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer QP { int q_pos[]; };
layout(std430, binding = 2) readonly buffer KP { uvec2 k_pool[]; };
layout(std430, binding = 3) readonly buffer VP { uvec2 v_pool[]; };
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
} p;
#include "attn_tile.glsl"
#include "kv_quant.glsl"
layout(constant_id = 3) const uint KTYPE = 0;
layout(constant_id = 4) const uint VTYPE = 0;
const uint KRB = KVQ_ROW_BYTES(KTYPE, HD), VRB = KVQ_ROW_BYTES(VTYPE, HD);
uint k_word(uint w) { return k_pool[w >> 1u][w & 1u]; }
uint v_word(uint w) { return v_pool[w >> 1u][w & 1u]; }
KVQ_DEFINE_LOAD4(k_load4, k_word)
KVQ_DEFINE_LOAD4(v_load4, v_word)
uvec2 pack4(vec4 x) { return uvec2(packHalf2x16(x.xy), packHalf2x16(x.zw)); }

const uint NOUT = (QT * HD2 + WG - 1u) / WG;  // output f16-pair columns per thread

shared uint vs[KT * HD2];     // [KT, HD] f16 pairs of values
shared float ss[QT * KT];     // scores, then probabilities
shared int kpos[KT];          // positions of the tile's keys (INT_MAX past the end)
shared int row_qpos[QT];      // q_pos of each row (INT_MIN for padding rows)
shared float row_m[QT], row_l[QT], row_alpha[QT];
shared int tile_qmin, tile_qmax;
shared uint tile_any[3];      // per-iteration "some key visible" flags, triple-buffered

bool visible(int kp, int qp) { return kp <= qp && (p.window <= 0 || qp - kp < p.window); }

// Online softmax over the tile for row r: new max, rescale factor, probabilities in place.
void softmax_row(uint r) {
  const float m_old = row_m[r];
  float m = m_old;
  for (uint j = 0; j < KT; ++j) m = max(m, ss[r * KT + j]);
  float alpha = 1.0, sum = 0.0;
  const bool live = m > 0.5 * NEG_BIG;
  if (live) alpha = exp(m_old - m);
  for (uint j = 0; j < KT; ++j) {
    const float s = ss[r * KT + j];
    const float e = (live && s > 0.5 * NEG_BIG) ? exp(s - m) : 0.0;
    ss[r * KT + j] = e;
    sum += e;
  }
  row_m[r] = m;
  row_l[r] = row_l[r] * alpha + sum;
  row_alpha[r] = alpha;
}

void main() {
  const uint tid = gl_LocalInvocationID.x, h = gl_WorkGroupID.y, split = gl_WorkGroupID.z;
  const uint n_rows = p.n_q * p.group, row0 = gl_WorkGroupID.x * QT;
  load_q_tile(h, row0, n_rows, p.scale);
  if (tid < QT) {
    const uint row = row0 + tid;
    row_qpos[tid] = row < n_rows ? q_pos[row / p.group] : -2147483647 - 1;
    row_m[tid] = NEG_BIG;
    row_l[tid] = 0.0;
  }
  if (tid < 3u) tile_any[tid] = 0u;
  barrier();
  if (tid == 0u) {
    int lo = 2147483647, hi = -2147483647 - 1;
    for (uint r = 0; r < QT && row0 + r < n_rows; ++r) lo = min(lo, row_qpos[r]), hi = max(hi, row_qpos[r]);
    tile_qmin = lo, tile_qmax = hi;
  }
  // This split's share of the head's rows, a multiple of KT.
  const uint len = uint(clamp(lens[h], 0, int(p.max_blocks * 32u)));
  const uint share = ((len + p.n_split - 1u) / p.n_split + KT - 1u) / KT * KT;
  const uint k_begin = min(len, split * share), k_end = min(len, k_begin + share);
  vec2 o[NOUT];
  [[unroll]] for (uint k = 0; k < NOUT; ++k) o[k] = vec2(0.0);
  barrier();
  uint it = 0;
  for (uint t0 = k_begin; t0 < k_end; t0 += KT, ++it) {
    // A: positions and whether any row can see any key of the tile.
    if (tid == 0u) tile_any[(it + 1u) % 3u] = 0u;
    if (tid < KT) {
      const uint t = t0 + tid;
      int kp = 2147483647;
      if (t < k_end) kp = pos_pool[kv_slot(h, t)];
      kpos[tid] = kp;
      if (t < k_end && kp <= tile_qmax && (p.window <= 0 || kp > tile_qmin - p.window))
        atomicOr(tile_any[it % 3u], 1u);
    }
    barrier();
    if (tile_any[it % 3u] == 0u) continue;  // uniform: fully masked tile (causal prefill)
    // B: keys and values.
    for (uint e = tid; e < KT * HD4; e += WG) {
      const uint j = e / HD4, c = e % HD4, t = t0 + j;
      uvec2 kb = uvec2(0u), vb = uvec2(0u);
      if (t < k_end) {
        const uint slot = kv_slot(h, t);
        kb = KTYPE == KVT_F16 ? k_pool[slot * HD4 + c] : pack4(k_load4(KTYPE, KRB, slot, 4u * c));
        vb = VTYPE == KVT_F16 ? v_pool[slot * HD4 + c] : pack4(v_load4(VTYPE, VRB, slot, 4u * c));
      }
      store_key(j, c, kb);
      vs[j * HD2 + 2u * c] = vb.x;
      vs[j * HD2 + 2u * c + 1u] = vb.y;
    }
    barrier();
    // C: masked, soft-capped scores.
    tile_dot_rows(tid);
    [[unroll]] for (uint k = 0; k < NPAIR; ++k) {
      const uint pi = tid + k * WG;
      if (pi < QT * KT) {
        const uint r = pi / KT, j = pi % KT;
        float s = NEG_BIG;
        if (visible(kpos[j], row_qpos[r]) && t0 + j < k_end) {
          s = pair_s[k];
          if (p.softcap > 0.0) s = p.softcap * tanh(s / p.softcap);
        }
        ss[pi] = s;
      }
    }
    barrier();
    // D: online softmax per row.
    if (tid < QT) softmax_row(tid);
    barrier();
    // E: rescale and accumulate P V.
    [[unroll]] for (uint k = 0; k < NOUT; ++k) {
      const uint e = tid + k * WG;
      if (e < QT * HD2) {
        const uint r = e / HD2, dp = e % HD2;
        vec2 acc = o[k] * row_alpha[r];
        for (uint j = 0; j < KT; ++j) acc += ss[r * KT + j] * unpackHalf2x16(vs[j * HD2 + dp]);
        o[k] = acc;
      }
    }
  }
  barrier();
  [[unroll]] for (uint k = 0; k < NOUT; ++k) {
    const uint e = tid + k * WG;
    const uint r = e / HD2, dp = e % HD2, row = row0 + r;
    if (e >= QT * HD2 || row >= n_rows) continue;
    const uint qrow = (row / p.group) * p.n_heads + h * p.group + row % p.group;
    if (p.n_split == 1u) {
      const float l = row_l[r];
      const vec2 v = l > 0.0 ? o[k] / l : vec2(0.0);
      dst[qrow * HD + 2u * dp] = v.x;
      dst[qrow * HD + 2u * dp + 1u] = v.y;
    } else {
      const uint n_all = p.n_q * p.n_heads, b = (split * n_all + qrow) * HD;
      dst[b + 2u * dp] = o[k].x;
      dst[b + 2u * dp + 1u] = o[k].y;
      if (dp == 0u) {
        const uint ml = p.n_split * n_all * HD + (split * n_all + qrow) * 2u;
        dst[ml] = row_m[r], dst[ml + 1u] = row_l[r];
      }
    }
  }
}
