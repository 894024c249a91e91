#version 450
// paged_attention_coopmat: the prefill form of paged_attention.comp on tensor cores
// (VK_NV_cooperative_matrix, or VK_KHR_cooperative_matrix with COOPMAT_KHR: include/coopmat.glsl;
// 16x16x16 f16 x f16 -> f32). Same contract and bindings
// (runtime/ops/paged_attention.h), unsplit: dst is always the normalised output.
// A workgroup owns QT = 16 * NSG query rows (row = i * group + g) of KV head h; each subgroup owns
// 16 of them and keeps their Q fragments and the O accumulators in registers. Keys come in tiles
// of KT = 32 rows (one paged block); the next tile is read into registers while the tensor cores
// work on the current one.
// Softmax: each row keeps a reference maximum m and the sum l of exp(s - m). Accumulators of this
// extension cannot be scaled per row, so m is only raised (and O rescaled through shared memory)
// when a tile's maximum exceeds it by more than RESCALE_AT; otherwise P = exp(s - m) <= e^8 goes
// to f16 as is and the final O / l is unchanged. After the first tiles rescaling is rare.
// Q is rounded to f16 after scaling, P to f16; S, O and l stay f32. Quantised K / V rows (q8_0,
// q4_0) are read in their stored form and dequantised (in f32, then rounded to f16) as the tile is
// written to shared memory, so the tensor cores see f16 tiles whatever the cache type.
// Bindings: 0 q f32 [n_q, n_heads, HD] | 1 q_pos i32 [n_q] | 2 k_pool KTYPE [n_slots, HD] (uvec4)
//           3 v_pool VTYPE (same) | 4 pos_pool i32 [n_slots]
//           5 block_table i32 [n_kv_heads, max_blocks] | 6 lens i32 [n_kv_heads]
//           7 dst f32 [n_q, n_heads, HD]
// Push: n_q, n_heads, group, max_blocks, window, n_split (unused), scale, softcap.
// Spec: 0 = workgroup size (32 * NSG: subgroups of 32), 1 = HD (multiple of 16, <= 128),
//       2 = NSG (a multiple of 4), 3 = SKIP (measurements only, wrong results: bit 1 skips
//       Q K^T, 2 the softmax, 4 P V, 8 the key/value loads; KVZ_BENCH_ATTN_SKIP), 4 = SORTED (1: the
//       positions increase along each head's rows, so the key loop stops at the first tile that
//       starts past every query of the workgroup; PagedAttentionArgs::rows_sorted),
//       5 = KTYPE, 6 = VTYPE (include/kv_quant.glsl: 0 f16, 1 q8_0, 2 q4_0; quantised types need
//       HD % 32 == 0).
// Grid: (ceil(n_q * group / QT), n_kv_heads, 1).
#include "common.glsl"
#include "coopmat.glsl"
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_vote : require
#extension GL_KHR_shader_subgroup_shuffle : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint HD = 128;
layout(constant_id = 2) const uint NSG = 8;
layout(constant_id = 3) const uint SKIP = 0;
layout(constant_id = 4) const uint SORTED = 0;
layout(constant_id = 5) const uint KTYPE = 0;
layout(constant_id = 6) const uint VTYPE = 0;
const uint QT = 16u * NSG;  // query rows per workgroup
const uint KT = 32u;        // keys per tile: one paged block
const uint HK = KT / 2u;    // keys of S per lane in the scalar softmax step
const float RESCALE_AT = 8.0;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer QP { int q_pos[]; };
layout(std430, binding = 2) readonly buffer KP { uvec4 k_pool[]; };
layout(std430, binding = 3) readonly buffer VP { uvec4 v_pool[]; };
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

shared uvec4 kv[2u * KT * (HD / 8u + 1u)];  // K rows [0, KT), V [KT, 2 KT); first Q, 2 KT rows a round
#include "attn_coopmat.glsl"
#include "kv_quant.glsl"
KVQ_DEFINE_CHUNK(k_chunk, k_pool, KTYPE, HD)
KVQ_DEFINE_CHUNK(v_chunk, v_pool, VTYPE, HD)
// Per thread and tile: K_N uvec4 of keys and as many of values, as stored (kvq_f16x8 at staging).
const uint K_N = (KT * HD8 + WG - 1u) / WG;
const uint KT2 = KT / 2u;         // f16 pairs per row of P
shared float ss[NSG * 16u * KT];  // per subgroup: S (16 x KT, f32), or an O fragment (16 x 16)
shared uint ps[NSG * 16u * KT2];  // per subgroup: P (16 x KT, f16 pairs)
shared float row_alpha[QT];       // per row: rescale factor of the pending rescale, then 1 / l
shared int kpos[KT];
shared int row_qpos[QT];
shared uint tile_any[3];          // per-tile "some key visible" flags, triple-buffered
shared int tile_qmin, tile_qmax;

uvec4 rk[K_N], rv[K_N];
int rpos;

bool visible(int kp, int qp) { return kp <= qp && (p.window <= 0 || qp - kp < p.window); }

// Reads key/value rows [t0, t0 + KT) of head h into registers; rows past `len` are zero with
// position INT_MAX.
void fetch_tile(uint h, uint t0, uint len) {
  const uint tid = gl_LocalInvocationID.x;
  if (tid < KT) rpos = t0 + tid < len ? pos_pool[kv_slot(h, t0 + tid)] : 2147483647;
  [[unroll]] for (uint i = 0; i < K_N; ++i) {
    const uint e = tid + i * WG, j = e / HD8, c = e % HD8, t = t0 + j;
    rk[i] = uvec4(0u), rv[i] = uvec4(0u);
    if ((SKIP & 8u) == 0u && e < KT * HD8 && t < len) {
      const uint s = kv_slot(h, t);
      rk[i] = k_chunk(s, c);
      rv[i] = v_chunk(s, c);
    }
  }
}

// Writes the fetched tile to shared memory and flags (in tile_any[it % 3]) whether some row of
// the workgroup sees some key of it; clears the flag of the next tile. The caller barriers.
void stage_tile(uint it) {
  const uint tid = gl_LocalInvocationID.x;
  if (tid == 0u) tile_any[(it + 1u) % 3u] = 0u;
  if (tid < KT) {
    kpos[tid] = rpos;
    if (rpos != 2147483647 && rpos <= tile_qmax &&
        (p.window <= 0 || rpos > tile_qmin - p.window))
      atomicOr(tile_any[it % 3u], 1u);
  }
  [[unroll]] for (uint i = 0; i < K_N; ++i) {
    const uint e = tid + i * WG, j = e / HD8, c = e % HD8;
    if (e < KT * HD8) {
      kv[j * LD + c] = kvq_f16x8(KTYPE, rk[i]);
      kv[(KT + j) * LD + c] = kvq_f16x8(VTYPE, rv[i]);
    }
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x, h = gl_WorkGroupID.y, sg = gl_SubgroupID;
  const uint lane = gl_SubgroupInvocationID;
  const uint n_rows = p.n_q * p.group, row0 = gl_WorkGroupID.x * QT;

  if (tid < 3u) tile_any[tid] = 0u;
  if (tid < QT) {
    const uint row = row0 + tid;
    row_qpos[tid] = row < n_rows ? q_pos[row / p.group] : -2147483647 - 1;
  }
  // Scaled f16 queries, 2 KT rows a round through kv, into each subgroup's A fragments.
  CM_A qa[HD / 16u];
  const uint RR = 2u * KT;  // rows per round
  for (uint r0 = 0; r0 < QT; r0 += RR) {
    stage_q(h, row0, n_rows, r0, RR);
    barrier();
    if (sg * 16u >= r0 && sg * 16u < r0 + RR)
      [[unroll]] for (uint c = 0; c < HD / 16u; ++c)
        CM_LOAD_ROW(qa[c], kv, (sg * 16u - r0) * LD + 2u * c, LD);
    barrier();
  }
  if (tid == 0u) {
    int lo = 2147483647, hi = -2147483647 - 1;
    for (uint r = 0; r < QT && row0 + r < n_rows; ++r)
      lo = min(lo, row_qpos[r]), hi = max(hi, row_qpos[r]);
    tile_qmin = lo, tile_qmax = hi;
  }

  const uint len = uint(clamp(lens[h], 0, int(p.max_blocks * 32u)));
  // Scalar work on S: lane handles row r = lane % 16 of the subgroup's 16 and keys
  // [half_ * HK, half_ * HK + HK).
  const uint r = lane % 16u, half_ = lane / 16u, my_row = sg * 16u + r;
  const uint srow = (sg * 16u + r) * KT;  // this lane's row of S
  const int qp = row_qpos[my_row];
  float m = NEG_BIG, l = 0.0;
  CM_ACC o[HD / 16u];
  [[unroll]] for (uint c = 0; c < HD / 16u; ++c) o[c] = CM_ACC(0.0);

  if (len > 0u) fetch_tile(h, 0u, len);
  barrier();  // tile_qmin / tile_qmax
  uint it = 0;
  for (uint t0 = 0; t0 < len; t0 += KT, ++it) {
    stage_tile(it);
    barrier();
    if (SORTED != 0u && kpos[0] > tile_qmax) break;  // uniform: this and later tiles are unseen
    if (t0 + KT < len) fetch_tile(h, t0 + KT, len);  // in flight during the math below
    if (tile_any[it % 3u] != 0u) {  // uniform: skip fully masked tiles
      // S = Q K^T for this subgroup's 16 rows.
      if ((SKIP & 1u) == 0u)
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
      // The lane's HK keys as HK / 2 pairs, visited from pair r on: at each step the 16 rows
      // read 8 different pairs (a row of S is 32 banks wide: in key order all 16 rows would read
      // the same bank). e[2 i2 + b] is key half_ HK + 2 ((i2 + r) % (HK / 2)) + b.
      float e[HK];
      float tmax = NEG_BIG;
      if ((SKIP & 2u) == 0u) {
      [[unroll]] for (uint i2 = 0; i2 < HK / 2u; ++i2) {
        const uint j = half_ * HK + 2u * ((i2 + r) % (HK / 2u));
        vec2 s = vec2(ss[srow + j], ss[srow + j + 1u]);
        if (p.softcap > 0.0) s = p.softcap * tanh(s / p.softcap);
        e[2u * i2] = visible(kpos[j], qp) ? s.x : NEG_BIG;
        e[2u * i2 + 1u] = visible(kpos[j + 1u], qp) ? s.y : NEG_BIG;
        tmax = max(tmax, max(e[2u * i2], e[2u * i2 + 1u]));
      }
      tmax = max(tmax, subgroupShuffleXor(tmax, 16u));
      const bool raise = tmax > m + RESCALE_AT;
      if (subgroupAny(raise)) {
        // New reference maxima; O rows scaled by exp(m_old - m_new) through shared memory.
        const float m_new = raise ? tmax : m;
        const float alpha = m > 0.5 * NEG_BIG ? exp(m - m_new) : 0.0;
        l *= alpha;
        m = m_new;
        if (half_ == 0u) row_alpha[my_row] = alpha;
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        [[unroll]] for (uint c = 0; c < HD / 16u; ++c) {
          CM_STORE_ROW(o[c], ss, sg * 16u * KT, 16u);
          subgroupMemoryBarrierShared();
          subgroupBarrier();
          for (uint x = lane; x < 256u; x += 32u) ss[sg * 16u * KT + x] *= row_alpha[sg * 16u + x / 16u];
          subgroupMemoryBarrierShared();
          subgroupBarrier();
          CM_LOAD_ROW(o[c], ss, sg * 16u * KT, 16u);
          subgroupBarrier();
        }
      }
      [[unroll]] for (uint i = 0; i < HK; ++i) {
        e[i] = e[i] > 0.5 * NEG_BIG ? exp(e[i] - m) : 0.0;
        l += e[i];
      }
      [[unroll]] for (uint i2 = 0; i2 < HK / 2u; ++i2)
        ps[(sg * 16u + r) * KT2 + half_ * (HK / 2u) + (i2 + r) % (HK / 2u)] =
            packHalf2x16(vec2(e[2u * i2], e[2u * i2 + 1u]));
      }
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      // O += P V.
      if ((SKIP & 4u) == 0u)
      [[unroll]] for (uint j = 0; j < KT / 16u; ++j) {
        CM_A pa;
        CM_LOAD_ROW(pa, ps, (sg * 16u) * KT2 + 8u * j, KT2);
        [[unroll]] for (uint c = 0; c < HD / 16u; ++c) {
          CM_B vb;
          CM_LOAD_ROW(vb, kv, (KT + j * 16u) * LD + 2u * c, LD);
          o[c] = CM_MUL_ADD(pa, vb, o[c]);
        }
      }
    }
    barrier();  // kv is restaged next
  }
  l += subgroupShuffleXor(l, 16u);
  if (half_ == 0u) row_alpha[my_row] = l > 0.0 ? 1.0 / l : 0.0;
  subgroupMemoryBarrierShared();
  subgroupBarrier();

  // Normalise and write, one 16 x 16 fragment at a time through this subgroup's ss slice.
  [[unroll]] for (uint c = 0; c < HD / 16u; ++c) {
    CM_STORE_ROW(o[c], ss, sg * 16u * KT, 16u);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    for (uint x = lane; x < 256u; x += 32u) {
      const uint rr = x / 16u, col = c * 16u + x % 16u, row = row0 + sg * 16u + rr;
      if (row >= n_rows) continue;
      const uint qrow = (row / p.group) * p.n_heads + h * p.group + row % p.group;
      dst[qrow * HD + col] = ss[sg * 16u * KT + x] * row_alpha[sg * 16u + rr];
    }
    subgroupBarrier();
  }
}
