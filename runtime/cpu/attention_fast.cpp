// Fast CPU paged attention and attn_score (runtime/cpu). A work item is a KV head with a tile of
// query rows, and all query heads of its GQA group ride along, so each 32-row K/V tile (one cache
// block) is converted from f16 once per item. Softmax is online (flash style): per query row a
// running max m, sum l and f32 accumulator, rescaled by exp(m_old - m_new) when the max grows.
// Inner loops run over 32 keys or head_dim contiguous floats so that -O3 vectorises them.
#include "runtime/cpu/attention_fast.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "runtime/cpu/attention_dims.h"
#include "runtime/cpu/half.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/simd_clones.h"
#include "runtime/kv_quant.h"

namespace kvz::cpu {
namespace {

constexpr int kKt = kKvBlockTokens;  // keys per tile: one cache block, contiguous slots
constexpr int kRowsPerItem = 256;    // query rows (query x group head) per work item
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// exp(x) in f32 without libm calls so loops over it vectorise: x = n ln2 + r, |r| <= ln2 / 2,
// exp(r) by its degree-6 Taylor polynomial (truncation < 1.2e-7 relative), 2^n through the
// exponent bits. About 2 ulp; 0 below -87 (incl. -inf), callers never pass more than 0.
inline float exp_approx(float x) {
  const float xc = std::max(x, -87.0f);
  const float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (xc - n * 0.693145752f) - n * 1.42860677e-6f;    // ln2 split hi + lo
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : p * two_n;
}

// Pool row `slot` (f16, q8_0 or q4_0) as f32 in row[0, hd): quantised blocks are dequantised
// once per tile here, so the dot products below run on f32 whatever the cache type. Straight
// loops over each 32-value block (no per-value branches) so that they vectorise in the SIMD
// clones; d x q is exact in f32, so the values equal cpu::dequantize_row's bit for bit.
[[gnu::always_inline]] inline void load_row(const Tensor& pool, int64_t slot, int64_t hd,
                                            float* row) {
  const DType t = pool.dtype();
  if (t == DType::kF16) {
    const uint16_t* k = pool.host<uint16_t>() + slot * hd;
    for (int64_t c = 0; c < hd; ++c) row[c] = f16_to_f32_branchless(k[c]);
    return;
  }
  const uint8_t* p = pool.host<uint8_t>() + slot * kv_row_bytes(t, hd);
  const int bb = t == DType::kQ8_0 ? 34 : 18;
  for (int64_t b = 0; b < hd / 32; ++b, p += bb, row += 32) {
    const float d = f16_to_f32_branchless(static_cast<uint16_t>(p[0] | (p[1] << 8)));
    const uint8_t* q = p + 2;
    if (t == DType::kQ8_0) {
      for (int j = 0; j < 32; ++j) row[j] = float(static_cast<int8_t>(q[j])) * d;
    } else {
      for (int j = 0; j < 16; ++j) {
        row[j] = d * float((q[j] & 0xF) - 8);
        row[j + 16] = d * float((q[j] >> 4) - 8);
      }
    }
  }
}

// kt[c * kKt + j] = k row j (slots slot..slot + n - 1), column c, as f32 ([head_dim][kKt],
// transposed); rows j >= n are 0. Rows are converted contiguously (vectorised), then scattered
// into the transposed tile.
inline void load_k_transposed(const Tensor& pool, int64_t slot, int n, int64_t hd, float* kt) {
  float row[256];  // head_dim <= 256
  for (int j = 0; j < n; ++j) {
    load_row(pool, slot + j, hd, row);
    for (int64_t c = 0; c < hd; ++c) kt[c * kKt + j] = row[c];
  }
  if (n < kKt)
    for (int64_t c = 0; c < hd; ++c) std::fill(kt + c * kKt + n, kt + (c + 1) * kKt, 0.0f);
}

// v32[j * hd + c] = v row j (slot + j) as f32 ([n][head_dim]).
inline void load_v(const Tensor& pool, int64_t slot, int n, int64_t hd, float* v32) {
  for (int j = 0; j < n; ++j) load_row(pool, slot + j, hd, v32 + j * hd);
}

// s[j] = scale * q . k_j for all kKt columns of the transposed tile.
inline void row_logits(const float* q, int64_t hd, const float* kt, float scale, float* s) {
  float acc[kKt] = {};
  for (int64_t c = 0; c < hd; ++c) {
    const float qc = q[c];
    const float* kc = kt + c * kKt;
    for (int j = 0; j < kKt; ++j) acc[j] += qc * kc[j];
  }
  for (int j = 0; j < kKt; ++j) s[j] = scale * acc[j];
}

// row_logits for 4 query rows at once: each k column loaded serves all 4 (the loop is bound by
// loads otherwise). s[r][j] = scale * q[r] . k_j.
[[gnu::always_inline]] inline void row_logits4(const float* const* q, int64_t hd, const float* kt,
                                               float scale, float (*s)[kKt]) {
  float a0[kKt] = {}, a1[kKt] = {}, a2[kKt] = {}, a3[kKt] = {};
  for (int64_t c = 0; c < hd; ++c) {
    const float q0 = q[0][c], q1 = q[1][c], q2 = q[2][c], q3 = q[3][c];
    const float* kc = kt + c * kKt;
    for (int j = 0; j < kKt; ++j) {
      a0[j] += q0 * kc[j];
      a1[j] += q1 * kc[j];
      a2[j] += q2 * kc[j];
      a3[j] += q3 * kc[j];
    }
  }
  for (int j = 0; j < kKt; ++j) {
    s[0][j] = scale * a0[j];
    s[1][j] = scale * a1[j];
    s[2][j] = scale * a2[j];
    s[3][j] = scale * a3[j];
  }
}

// Logits of query rows [r0, r0 + nr) (nr <= 4) of a tile: row(r) gives row r's q.
template <class RowFn>
[[gnu::always_inline]] inline void tile_logits(RowFn&& row, int64_t r0, int nr, int64_t hd,
                                               const float* kt, float scale, float (*s)[kKt]) {
  if (nr == 4) {
    const float* q[4] = {row(r0), row(r0 + 1), row(r0 + 2), row(r0 + 3)};
    row_logits4(q, hd, kt, scale, s);
  } else {
    for (int i = 0; i < nr; ++i) row_logits(row(r0 + i), hd, kt, scale, s[i]);
  }
}

// Folds one tile of logits s[kKt] (masked entries -inf) into the running max m and sum l and
// leaves the tile's probabilities exp(s - m_new) in s; alpha = exp(m_old - m_new) rescales earlier
// sums. Returns false (touching nothing) when every entry is masked.
inline bool online_update(float* s, float& m, float& l, float& alpha) {
  float tmax = kNegInf;
  for (int j = 0; j < kKt; ++j) tmax = std::max(tmax, s[j]);
  if (tmax == kNegInf) return false;
  const float m_new = std::max(m, tmax);
  alpha = exp_approx(m - m_new);
  for (int j = 0; j < kKt; ++j) s[j] = exp_approx(s[j] - m_new);
  float sum = 0;
  for (int j = 0; j < kKt; ++j) sum += s[j];
  l = l * alpha + sum;
  m = m_new;
  return true;
}

// acc[0, hd) += sum_{j < n} p[j] * v[j, :], 16 columns at a time held in registers across j.
inline void accumulate_pv(const float* p, int n, const float* v, int64_t hd, float* acc) {
  int64_t c0 = 0;
  for (; c0 + 16 <= hd; c0 += 16) {
    float a[16];
    for (int e = 0; e < 16; ++e) a[e] = acc[c0 + e];
    for (int j = 0; j < n; ++j) {
      const float pj = p[j];
      const float* vj = v + j * hd + c0;
      for (int e = 0; e < 16; ++e) a[e] += pj * vj[e];
    }
    for (int e = 0; e < 16; ++e) acc[c0 + e] = a[e];
  }
  for (; c0 < hd; ++c0)
    for (int j = 0; j < n; ++j) acc[c0] += p[j] * v[j * hd + c0];
}

// accumulate_pv for 4 consecutive rows of acc ([4][hd]) with probabilities p[4][kKt]: each v row
// loaded serves all 4.
[[gnu::always_inline]] inline void accumulate_pv4(const float (*p)[kKt], int n, const float* v,
                                                  int64_t hd, float* acc) {
  int64_t c0 = 0;
  for (; c0 + 16 <= hd; c0 += 16) {
    float a0[16], a1[16], a2[16], a3[16];
    for (int e = 0; e < 16; ++e) {
      a0[e] = acc[c0 + e];
      a1[e] = acc[hd + c0 + e];
      a2[e] = acc[2 * hd + c0 + e];
      a3[e] = acc[3 * hd + c0 + e];
    }
    for (int j = 0; j < n; ++j) {
      const float p0 = p[0][j], p1 = p[1][j], p2 = p[2][j], p3 = p[3][j];
      const float* vj = v + j * hd + c0;
      for (int e = 0; e < 16; ++e) {
        a0[e] += p0 * vj[e];
        a1[e] += p1 * vj[e];
        a2[e] += p2 * vj[e];
        a3[e] += p3 * vj[e];
      }
    }
    for (int e = 0; e < 16; ++e) {
      acc[c0 + e] = a0[e];
      acc[hd + c0 + e] = a1[e];
      acc[2 * hd + c0 + e] = a2[e];
      acc[3 * hd + c0 + e] = a3[e];
    }
  }
  for (; c0 < hd; ++c0)
    for (int r = 0; r < 4; ++r)
      for (int j = 0; j < n; ++j) acc[r * hd + c0] += p[r][j] * v[j * hd + c0];
}

// First slot of rows [t, t + n) of KV head h (n rows within one block), checked.
int64_t tile_slot(const AttnDims& d, const int32_t* table, int64_t h, int64_t t, int n) {
  const int64_t s = int64_t{table[h * d.max_blocks + t / kKt]} * kKt + t % kKt;
  KVZ_CHECK(s >= 0 && s + n <= d.n_slots, "attention: head {} rows {}.. map to slot {} of {}", h, t,
            s, d.n_slots);
  return s;
}

// End of the tile starting at row t of a range ending at r1: tiles are cut at block boundaries.
// (Plain loops over tiles rather than a lambda-taking helper: a lambda would not be inlined into
// the target clones and would run the baseline ISA.)
inline int64_t tile_end(int64_t t, int64_t r1) { return std::min(r1, (t / kKt + 1) * kKt); }

// Query rows of one work item: queries [i0, i0 + n_i) of KV head h's group, row r = il * group + g
// holds q[i0 + il, h * group + g, :]. For fixed il the group's heads are adjacent in q.
struct QueryTile {
  int64_t h, i0, n_i, rows;
  const float* row(const AttnDims& d, const float* q, int64_t r) const {
    const int64_t il = r / d.group, g = r % d.group;
    return q + ((i0 + il) * d.n_heads + h * d.group + g) * d.head_dim;
  }
};

QueryTile query_tile(const AttnDims& d, int64_t item, int64_t q_per_item) {
  const int64_t n_tiles = (d.n_q + q_per_item - 1) / q_per_item;
  QueryTile qt{item / n_tiles, item % n_tiles * q_per_item, 0, 0};
  qt.n_i = std::min(q_per_item, d.n_q - qt.i0);
  qt.rows = qt.n_i * d.group;
  return qt;
}

struct AttnTileBufs {
  std::vector<float> kt, v, s, acc, m, l;  // [hd][kKt], [kKt][hd], [kKt], [rows][hd], [rows] x2
  AttnTileBufs(int64_t rows, int64_t hd)
      : kt(hd * kKt), v(kKt * hd), s(kKt), acc(rows * hd, 0.0f), m(rows, kNegInf), l(rows, 0.0f) {}
};

KVZ_CPU_CLONES void attention_item(const PagedAttentionArgs& a, const AttnDims& d,
                                   const QueryTile& qt) {
  const int32_t* table = a.block_table.host<int32_t>();
  const int32_t* pos = a.pos_pool.host<int32_t>();
  const int32_t* q_pos = a.q_pos.host<int32_t>() + qt.i0;
  const float* q = a.q.host<float>();
  const int64_t hd = d.head_dim;
  const int64_t len =
      std::clamp<int64_t>(a.lens.host<int32_t>()[qt.h], 0, d.max_blocks * kKvBlockTokens);
  const int32_t qp_min = *std::min_element(q_pos, q_pos + qt.n_i);
  const int32_t qp_max = *std::max_element(q_pos, q_pos + qt.n_i);
  AttnTileBufs b(qt.rows, hd);
  for (int64_t t = 0; t < len; t += kKt) {
    const int n = int(std::min<int64_t>(kKt, len - t));
    const int64_t slot = tile_slot(d, table, qt.h, t, n);
    const int32_t* kpos = pos + slot;
    const int32_t p_min = *std::min_element(kpos, kpos + n),
                  p_max = *std::max_element(kpos, kpos + n);
    if (p_min > qp_max || (a.window > 0 && int64_t{qp_min} - p_max >= a.window)) continue;
    load_k_transposed(a.k_pool, slot, n, hd, b.kt.data());
    load_v(a.v_pool, slot, n, hd, b.v.data());
    for (int64_t r0 = 0; r0 < qt.rows; r0 += 4) {
      const int nr = int(std::min<int64_t>(4, qt.rows - r0));
      float s4[4][kKt];
      tile_logits([&](int64_t r) { return qt.row(d, q, r); }, r0, nr, hd, b.kt.data(), a.scale, s4);
      for (int ir = 0; ir < nr; ++ir) {
        const int64_t r = r0 + ir;
        const int32_t qp = q_pos[r / d.group];
        float* s = s4[ir];
        for (int j = 0; j < kKt; ++j) {
          const bool vis = j < n && kpos[j] <= qp && (a.window == 0 || qp - kpos[j] < a.window);
          if (!vis)
            s[j] = kNegInf;
          else if (a.softcap > 0)
            s[j] = a.softcap * std::tanh(s[j] / a.softcap);
        }
        float alpha = 1.0f;
        if (!online_update(s, b.m[r], b.l[r], alpha)) {
          std::fill(s, s + kKt, 0.0f);  // nothing visible: adds nothing below
          continue;
        }
        float* acc = b.acc.data() + r * hd;
        if (alpha != 1.0f)
          for (int64_t c = 0; c < hd; ++c) acc[c] *= alpha;
      }
      if (nr == 4)
        accumulate_pv4(s4, n, b.v.data(), hd, b.acc.data() + r0 * hd);
      else
        for (int ir = 0; ir < nr; ++ir)
          accumulate_pv(s4[ir], n, b.v.data(), hd, b.acc.data() + (r0 + ir) * hd);
    }
  }
  for (int64_t r = 0; r < qt.rows; ++r) {
    const int64_t il = r / d.group, g = r % d.group;
    float* o = a.out.host<float>() + ((qt.i0 + il) * d.n_heads + qt.h * d.group + g) * hd;
    const float inv = b.l[r] > 0 ? 1.0f / b.l[r] : 0.0f;
    for (int64_t c = 0; c < hd; ++c) o[c] = b.acc[r * hd + c] * inv;
  }
}

// Threads only when the item work (rows x keys x head_dim) pays for a thread start.
int threads_for(int n_threads, int64_t work) { return work < (int64_t{1} << 20) ? 1 : n_threads; }

// Folds rows [r0, r1) of KV head qt.h into the running max m and sum l of every query row;
// self: row t is visible to query i only if t - s0 <= i (the query's own prefix).
KVZ_CPU_CLONES void lse_range(const AttnScoreArgs& a, const AttnDims& d, const QueryTile& qt,
                              int64_t r0, int64_t r1, bool self, float* m, float* l) {
  const int32_t* table = a.block_table.host<int32_t>();
  const float* q = a.q.host<float>();
  const int64_t hd = d.head_dim;
  std::vector<float> kt(hd * kKt);
  float s[4][kKt];
  for (int64_t t = r0; t < r1; t = tile_end(t, r1)) {
    const int n = int(tile_end(t, r1) - t);
    const int64_t slot = tile_slot(d, table, qt.h, t, n);
    load_k_transposed(a.k_pool, slot, n, hd, kt.data());
    for (int64_t q0 = 0; q0 < qt.rows; q0 += 4) {
      const int nr = int(std::min<int64_t>(4, qt.rows - q0));
      // Rows whose visible prefix is empty are computed and then dropped (self only).
      tile_logits([&](int64_t r) { return qt.row(d, q, r); }, q0, nr, hd, kt.data(), a.scale, s);
      for (int ir = 0; ir < nr; ++ir) {
        const int64_t r = q0 + ir;
        const int64_t last = self ? std::min<int64_t>(n, qt.i0 + r / d.group + a.s0 - t + 1) : n;
        if (last <= 0) continue;
        for (int j = int(last); j < kKt; ++j) s[ir][j] = kNegInf;
        float alpha;
        online_update(s[ir], m[r], l[r], alpha);
      }
    }
  }
}

// Pass 1 of attn_score for one item: lse[i, hq] over K_i = [0, n_sink) U [t0, t1) U [s0, s0 + i].
void score_lse_item(const AttnScoreArgs& a, const AttnDims& d, const QueryTile& qt, float* lse) {
  std::vector<float> m(qt.rows, kNegInf), l(qt.rows, 0.0f);
  lse_range(a, d, qt, 0, a.n_sink, false, m.data(), l.data());
  lse_range(a, d, qt, a.t0, a.t1, false, m.data(), l.data());
  lse_range(a, d, qt, a.s0, a.s0 + qt.i0 + qt.n_i, true, m.data(), l.data());
  for (int64_t r = 0; r < qt.rows; ++r) {
    const int64_t il = r / d.group, g = r % d.group;
    lse[(qt.i0 + il) * d.n_heads + qt.h * d.group + g] = m[r] + std::log(l[r]);
  }
}

// Pass 2 of attn_score for KV head h and the rows [t, t + n) of the chunk (one block tile):
// score = exp(max over queries and group heads of (logit - lse)).
KVZ_CPU_CLONES void score_max_item(const AttnScoreArgs& a, const AttnDims& d, int64_t h, int64_t t,
                                   int n, const float* lse) {
  const int64_t hd = d.head_dim;
  const int64_t slot = tile_slot(d, a.block_table.host<int32_t>(), h, t, n);
  std::vector<float> kt(hd * kKt);
  load_k_transposed(a.k_pool, slot, n, hd, kt.data());
  float best[kKt], s[4][kKt];
  std::fill(best, best + kKt, kNegInf);
  // Query row r = i * group + g is q row i * n_heads + h * group + g.
  const auto qrow = [&](int64_t r) { return r / d.group * d.n_heads + h * d.group + r % d.group; };
  const int64_t rows = d.n_q * d.group;
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    const int nr = int(std::min<int64_t>(4, rows - r0));
    tile_logits([&](int64_t r) { return a.q.host<float>() + qrow(r) * hd; }, r0, nr, hd, kt.data(),
                a.scale, s);
    for (int ir = 0; ir < nr; ++ir) {
      const float lr = lse[qrow(r0 + ir)];
      for (int j = 0; j < kKt; ++j) best[j] = std::max(best[j], s[ir][j] - lr);
    }
  }
  float* score = a.score.host<float>() + h * (a.t1 - a.t0) + (t - a.t0);
  for (int j = 0; j < n; ++j) score[j] = std::exp(best[j]);
}

}  // namespace

void paged_attention_fast(const PagedAttentionArgs& a, int n_threads) {
  const AttnDims d = check_paged_attention(a);
  if (d.n_q == 0) return;
  const int64_t q_per_item = std::max<int64_t>(1, kRowsPerItem / d.group);
  const int64_t n_items = d.n_kv_heads * ((d.n_q + q_per_item - 1) / q_per_item);
  const int64_t work = d.n_q * d.n_heads * d.max_blocks * kKvBlockTokens * d.head_dim;
  parallel_for(n_items, threads_for(n_threads, work),
               [&](int, int64_t item) { attention_item(a, d, query_tile(d, item, q_per_item)); });
}

void attn_score_fast(const AttnScoreArgs& a, int n_threads) {
  const AttnDims d = check_attn_score(a);
  if (d.n_q == 0 || a.t1 == a.t0) return;
  const int64_t work = d.n_q * d.n_heads * (a.t1 - a.t0 + a.n_sink + d.n_q) * d.head_dim;
  n_threads = threads_for(n_threads, work);
  std::vector<float> lse(d.n_q * d.n_heads);  // [n_q, n_heads]
  const int64_t q_per_item = std::max<int64_t>(1, kRowsPerItem / d.group);
  const int64_t n_q_items = d.n_kv_heads * ((d.n_q + q_per_item - 1) / q_per_item);
  parallel_for(n_q_items, n_threads, [&](int, int64_t item) {
    score_lse_item(a, d, query_tile(d, item, q_per_item), lse.data());
  });
  const int64_t first = a.t0 / kKt, n_tiles = (a.t1 - 1) / kKt - first + 1;
  parallel_for(d.n_kv_heads * n_tiles, n_threads, [&](int, int64_t item) {
    const int64_t h = item / n_tiles, k = item % n_tiles;
    const int64_t t = std::max<int64_t>(a.t0, (first + k) * kKt);
    const int64_t end = std::min<int64_t>(a.t1, (first + k + 1) * kKt);
    score_max_item(a, d, h, t, int(end - t), lse.data());
  });
}

}  // namespace kvz::cpu
