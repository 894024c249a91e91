// Fast CPU paged attention and attn_score (runtime/cpu). Highway compiles this file once per x86
// level (foreach_target) and HWY_DYNAMIC_DISPATCH picks the best one per call, like the matmul
// kernels (runtime/cpu/qdot_hwy.cpp), so cpu::simd_force_target reaches it too.
//
// A work item is a KV head with a tile of query rows, and all query heads of its GQA group ride
// along, so each 32-row K/V tile (one cache block) is converted from f16 once per item. Query rows
// go through in register blocks of kRowBlock: their logits against the transposed K tile
// (keys in vector lanes, one q value broadcast per FMA), a vectorised online softmax (flash
// style: running max m, sum l, accumulator rescaled by exp(m_old - m_new)), then P x V with the
// block's rows sharing every V load. The scalar references (paged_attention_ref.cpp) stay the
// tests' ground truth.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL  // the same levels as the matmul kernels
#endif

#include "runtime/cpu/attention_fast.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/cpu/attention_dims.h"
#include "runtime/cpu/half.h"
#include "runtime/cpu/parallel.h"
#include "runtime/kv_quant.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/cpu/attention_fast.cpp"
#include <hwy/aligned_allocator.h>
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace kvz::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;

constexpr int kKt = kKvBlockTokens;  // keys per tile: one cache block, contiguous slots
constexpr int kRowsPerItem = 256;    // about this many query rows (query x group head) per item
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int kN = int(hn::MaxLanes(DF()));
static_assert(kKt % kN == 0, "a key tile is whole vectors");
constexpr int kKv = kKt / kN;  // vectors per row of logits
// Query rows per register block, and per logits / P x V call: as many as keep the accumulators in
// registers (32 vector registers at 512 bits, 16 below).
constexpr int kRowBlock = 8;
constexpr int kQkRows = kN >= 16 ? 8 : (kN == 8 ? 2 : 1);
constexpr int kPvRows = kN >= 16 ? 8 : 4;
static_assert(kRowBlock % kQkRows == 0 && kRowBlock % kPvRows == 0);

// exp(x) in f32: x = n ln2 + r, |r| <= ln2 / 2, exp(r) by its degree-6 Taylor polynomial
// (truncation < 1.2e-7 relative), 2^n through the exponent bits. About 2 ulp; 0 below -87 (incl.
// -inf); callers never pass more than 0.
HWY_INLINE VF Exp(DF df, VF x) {
  const DI di;
  const VF lo = hn::Set(df, -87.0f);
  const VF xc = hn::Max(x, lo);
  const VF n = hn::Round(hn::Mul(xc, hn::Set(df, 1.44269504f)));
  const VF r = hn::NegMulAdd(n, hn::Set(df, 1.42860677e-6f),
                             hn::NegMulAdd(n, hn::Set(df, 0.693145752f), xc));  // ln2 hi + lo
  VF p = hn::Set(df, 1.0f / 720);
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 120));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 24));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 6));
  p = hn::MulAdd(p, r, hn::Set(df, 0.5f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f));
  const VF two_n =
      hn::BitCast(df, hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127))));
  return hn::IfThenZeroElse(hn::Lt(x, lo), hn::Mul(p, two_n));
}

// The same function on one value (the rescale factor of a row).
HWY_INLINE float ExpScalar(float x) {
  const DF df;
  return hn::GetLane(Exp(df, hn::Set(df, x)));
}

HWY_INLINE float MaxOf(DF df, VF v) { return hn::GetLane(hn::MaxOfLanes(df, v)); }
HWY_INLINE float SumOf(DF df, VF v) { return hn::GetLane(hn::SumOfLanes(df, v)); }

// Pool row `slot` (f16, q8_0 or q4_0) as f32 in row[0, hd): quantised blocks are dequantised
// once per tile here, so the dot products below run on f32 whatever the cache type; d x q is
// exact in f32, so the values equal cpu::dequantize_row's bit for bit.
HWY_INLINE void LoadRow(const Tensor& pool, int64_t slot, int64_t hd, float* row) {
  const DType t = pool.dtype();
  if (t == DType::kF16) {
    const DF df;
    const hn::Rebind<hwy::float16_t, DF> dh;
    const uint16_t* k = pool.host<uint16_t>() + slot * hd;
    int64_t c = 0;
    for (; c + kN <= hd; c += kN)
      hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(k + c))),
                 df, row + c);
    for (; c < hd; ++c) row[c] = f16_to_f32_branchless(k[c]);
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
// transposed); rows j >= n are 0.
HWY_INLINE void LoadKTransposed(const Tensor& pool, int64_t slot, int n, int64_t hd, float* kt) {
  HWY_ALIGN float row[256];  // head_dim <= 256
  for (int j = 0; j < n; ++j) {
    LoadRow(pool, slot + j, hd, row);
    for (int64_t c = 0; c < hd; ++c) kt[c * kKt + j] = row[c];
  }
  if (n < kKt)
    for (int64_t c = 0; c < hd; ++c) std::fill(kt + c * kKt + n, kt + (c + 1) * kKt, 0.0f);
}

// s[r][j] = scale * q_r . k_j for R query rows and all kKt keys of the transposed tile, q_r at
// qb[c * kRowBlock + r] (a packed block, PackQ): per column c, kKv vectors of k serve every row.
template <int R>
HWY_INLINE void Logits(const float* qb, int64_t hd, const float* kt, float scale, float (*s)[kKt]) {
  const DF df;
  VF acc[R][kKv];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kKv; ++v) acc[r][v] = hn::Zero(df);
  for (int64_t c = 0; c < hd; ++c) {
    VF k[kKv];
    for (int v = 0; v < kKv; ++v) k[v] = hn::Load(df, kt + c * kKt + v * kN);
    for (int r = 0; r < R; ++r) {
      const VF qc = hn::Set(df, qb[c * kRowBlock + r]);
      for (int v = 0; v < kKv; ++v) acc[r][v] = hn::MulAdd(qc, k[v], acc[r][v]);
    }
  }
  const VF sc = hn::Set(df, scale);
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kKv; ++v) hn::StoreU(hn::Mul(acc[r][v], sc), df, s[r] + v * kN);
}

// Logits of the kRowBlock rows of the packed block qb.
HWY_INLINE void BlockLogits(const float* qb, int64_t hd, const float* kt, float scale,
                            float (*s)[kKt]) {
  for (int r = 0; r < kRowBlock; r += kQkRows) Logits<kQkRows>(qb + r, hd, kt, scale, s + r);
}

// o[r] = alpha[r] * o[r] + sum_{j < n} p[r][j] * v[j] for R rows of o (row stride hdp, a
// multiple of kN, like v's): two vector columns at a time, each v load serving every row.
template <int R>
HWY_INLINE void AccumulatePV(const float (*p)[kKt], const float* alpha, int n, const float* v,
                             int64_t hdp, float* o) {
  const DF df;
  int64_t c0 = 0;
  for (; c0 + 2 * kN <= hdp; c0 += 2 * kN) {
    VF a[R][2];
    for (int r = 0; r < R; ++r) {
      const VF al = hn::Set(df, alpha[r]);
      a[r][0] = hn::Mul(hn::LoadU(df, o + r * hdp + c0), al);
      a[r][1] = hn::Mul(hn::LoadU(df, o + r * hdp + c0 + kN), al);
    }
    for (int j = 0; j < n; ++j) {
      const VF v0 = hn::LoadU(df, v + j * hdp + c0), v1 = hn::LoadU(df, v + j * hdp + c0 + kN);
      for (int r = 0; r < R; ++r) {
        const VF pj = hn::Set(df, p[r][j]);
        a[r][0] = hn::MulAdd(pj, v0, a[r][0]);
        a[r][1] = hn::MulAdd(pj, v1, a[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      hn::StoreU(a[r][0], df, o + r * hdp + c0);
      hn::StoreU(a[r][1], df, o + r * hdp + c0 + kN);
    }
  }
  if (c0 < hdp) {  // one vector column left
    VF a[R];
    for (int r = 0; r < R; ++r)
      a[r] = hn::Mul(hn::LoadU(df, o + r * hdp + c0), hn::Set(df, alpha[r]));
    for (int j = 0; j < n; ++j) {
      const VF v0 = hn::LoadU(df, v + j * hdp + c0);
      for (int r = 0; r < R; ++r) a[r] = hn::MulAdd(hn::Set(df, p[r][j]), v0, a[r]);
    }
    for (int r = 0; r < R; ++r) hn::StoreU(a[r], df, o + r * hdp + c0);
  }
}

// s[j] = -inf for the keys j >= last.
HWY_INLINE void MaskFrom(int last, float* s) {
  const DF df;
  const DI di;
  for (int v = 0; v < kKv; ++v) {
    const auto keep = hn::RebindMask(df, hn::Lt(hn::Iota(di, v * kN), hn::Set(di, last)));
    hn::StoreU(hn::IfThenElse(keep, hn::LoadU(df, s + v * kN), hn::Set(df, kNegInf)), df,
               s + v * kN);
  }
}

// s[j] = -inf for the keys j that query position qp does not see: j >= n, kpos[j] > qp, or
// outside the window (window > 0).
HWY_INLINE void MaskVisible(const int32_t* kpos, int n, int32_t qp, int window, float* s) {
  const DF df;
  const DI di;
  const auto vq = hn::Set(di, qp);
  for (int v = 0; v < kKv; ++v) {
    const auto kp = hn::LoadU(di, kpos + v * kN);
    auto vis = hn::And(hn::Lt(hn::Iota(di, v * kN), hn::Set(di, n)), hn::Not(hn::Gt(kp, vq)));
    if (window > 0) vis = hn::And(vis, hn::Lt(hn::Sub(vq, kp), hn::Set(di, window)));
    hn::StoreU(
        hn::IfThenElse(hn::RebindMask(df, vis), hn::LoadU(df, s + v * kN), hn::Set(df, kNegInf)),
        df, s + v * kN);
  }
}

// Folds the tile logits of a register block's rows i < nr (s[i], masked entries -inf) into their
// running max m[i] and sums l[i * kN, (i + 1) * kN) (kN partial sums each, added up at the end:
// no horizontal sum per tile): leaves exp(s - m_new) in s (store_p) and alpha[i] = exp(m_old -
// m_new), the factor for earlier sums. A row with every entry masked touches nothing, gets s = 0
// and alpha = 1. The rows' max -> exp -> sum chains are independent, so each stage runs across
// the block before the next: the chains overlap instead of running one after another.
HWY_INLINE void OnlineUpdate(float (*s)[kKt], int nr, float* m, float* l, float* alpha,
                             bool store_p) {
  const DF df;
  float m_new[kRowBlock];
  bool live[kRowBlock];
  for (int i = 0; i < nr; ++i) {
    VF mx = hn::LoadU(df, s[i]);
    for (int v = 1; v < kKv; ++v) mx = hn::Max(mx, hn::LoadU(df, s[i] + v * kN));
    m_new[i] = MaxOf(df, mx);
  }
  for (int i = 0; i < nr; ++i) {
    live[i] = m_new[i] != kNegInf;
    m_new[i] = std::max(m[i], m_new[i]);
    alpha[i] = live[i] ? ExpScalar(m[i] - m_new[i]) : 1.0f;
  }
  for (int i = 0; i < nr; ++i) {
    if (!live[i]) {
      if (store_p) std::fill(s[i], s[i] + kKt, 0.0f);
      continue;
    }
    const VF mn = hn::Set(df, m_new[i]);
    VF sum = hn::Zero(df);
    for (int v = 0; v < kKv; ++v) {
      const VF e = Exp(df, hn::Sub(hn::LoadU(df, s[i] + v * kN), mn));
      if (store_p) hn::StoreU(e, df, s[i] + v * kN);
      sum = hn::Add(sum, e);
    }
    float* li = l + i * kN;
    hn::StoreU(hn::MulAdd(hn::LoadU(df, li), hn::Set(df, alpha[i]), sum), df, li);
    m[i] = m_new[i];
  }
}

// First slot of rows [t, t + n) of KV head h (n rows within one block), checked.
int64_t TileSlot(const AttnDims& d, const int32_t* table, int64_t h, int64_t t, int n) {
  const int64_t s = int64_t{table[h * d.max_blocks + t / kKt]} * kKt + t % kKt;
  KVZ_CHECK(s >= 0 && s + n <= d.n_slots, "attention: head {} rows {}.. map to slot {} of {}", h, t,
            s, d.n_slots);
  return s;
}

// End of the tile starting at row t of a range ending at r1: tiles are cut at block boundaries.
inline int64_t TileEnd(int64_t t, int64_t r1) { return std::min(r1, (t / kKt + 1) * kKt); }

// Query rows of one work item: queries [i0, i0 + n_i) of KV head h's group, row r = il * group + g
// holds q[i0 + il, h * group + g, :]. For fixed il the group's heads are adjacent in q.
struct QueryTile {
  int64_t h, i0, n_i, rows;
  // The row index into q [n_q * n_heads]; rows past the item's repeat its last row (the register
  // blocks compute them and drop the result).
  int64_t qrow(const AttnDims& d, int64_t r) const {
    r = std::min(r, rows - 1);
    return (i0 + r / d.group) * d.n_heads + h * d.group + r % d.group;
  }
};

inline int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Queries per work item: a multiple of kRowBlock, so that every item's rows start a packed block.
int64_t QueriesPerItem(const AttnDims& d) {
  return kRowBlock * std::max<int64_t>(1, kRowsPerItem / (kRowBlock * d.group));
}

// The rows of qt packed for Logits: block b of kRowBlock rows at dst + b * hd * kRowBlock, row r
// column c at [c * kRowBlock + r % kRowBlock]; the last block's spare rows repeat the last row.
void PackQ(const float* q, const AttnDims& d, const QueryTile& qt, float* dst) {
  const int64_t hd = d.head_dim;
  for (int64_t r = 0; r < RoundUp(qt.rows, kRowBlock); ++r) {
    const float* src = q + qt.qrow(d, r) * hd;
    float* blk = dst + r / kRowBlock * hd * kRowBlock + r % kRowBlock;
    for (int64_t c = 0; c < hd; ++c) blk[c * kRowBlock] = src[c];
  }
}

QueryTile MakeQueryTile(const AttnDims& d, int64_t item, int64_t q_per_item) {
  const int64_t n_tiles = (d.n_q + q_per_item - 1) / q_per_item;
  QueryTile qt{item / n_tiles, item % n_tiles * q_per_item, 0, 0};
  qt.n_i = std::min(q_per_item, d.n_q - qt.i0);
  qt.rows = qt.n_i * d.group;
  return qt;
}

// Aligned f32 scratch of one work item.
struct Scratch {
  hwy::AlignedFreeUniquePtr<float[]> p;
  explicit Scratch(size_t n) : p(hwy::AllocateAligned<float>(n)) {
    std::fill(&p[0], &p[0] + n, 0.0f);
  }
  float* get() { return p.get(); }
};

void AttentionItem(const PagedAttentionArgs& a, const AttnDims& d, int64_t q_per_item,
                   int64_t item) {
  const QueryTile qt = MakeQueryTile(d, item, q_per_item);
  const int32_t* table = a.block_table.host<int32_t>();
  const int32_t* pos = a.pos_pool.host<int32_t>();
  const int32_t* q_pos = a.q_pos.host<int32_t>() + qt.i0;
  const int64_t hd = d.head_dim, hdp = RoundUp(hd, kN), rows_p = RoundUp(qt.rows, kRowBlock);
  const int64_t len =
      std::clamp<int64_t>(a.lens.host<int32_t>()[qt.h], 0, d.max_blocks * kKvBlockTokens);
  const int32_t qp_min = *std::min_element(q_pos, q_pos + qt.n_i);
  const int32_t qp_max = *std::max_element(q_pos, q_pos + qt.n_i);
  // kt [hd][kKt], v [kKt][hdp], acc [rows_p][hdp], packed q [rows_p][hd], l [rows_p][kN]
  Scratch buf(size_t(hd) * kKt + size_t(kKt) * hdp + size_t(rows_p) * (hdp + hd + kN));
  float* kt = buf.get();
  float* v = kt + hd * kKt;
  float* acc = v + kKt * hdp;
  float* qp = acc + rows_p * hdp;
  float* l = qp + rows_p * hd;
  PackQ(a.q.host<float>(), d, qt, qp);
  std::vector<float> m(rows_p, kNegInf);
  for (int64_t t = 0; t < len; t += kKt) {
    const int n = int(std::min<int64_t>(kKt, len - t));
    const int64_t slot = TileSlot(d, table, qt.h, t, n);
    const int32_t* kpos = pos + slot;
    const int32_t p_min = *std::min_element(kpos, kpos + n),
                  p_max = *std::max_element(kpos, kpos + n);
    if (p_min > qp_max || (a.window > 0 && int64_t{qp_min} - p_max >= a.window)) continue;
    LoadKTransposed(a.k_pool, slot, n, hd, kt);
    for (int j = 0; j < n; ++j) LoadRow(a.v_pool, slot + j, hd, v + j * hdp);
    for (int64_t r0 = 0; r0 < qt.rows; r0 += kRowBlock) {
      HWY_ALIGN float s[kRowBlock][kKt];
      float alpha[kRowBlock];
      BlockLogits(qp + r0 * hd, hd, kt, a.scale, s);
      const int nr = int(std::min<int64_t>(kRowBlock, qt.rows - r0));
      for (int i = 0; i < nr; ++i) {
        const int32_t qpos = q_pos[(r0 + i) / d.group];
        if (a.softcap > 0)
          for (int j = 0; j < kKt; ++j) s[i][j] = a.softcap * std::tanh(s[i][j] / a.softcap);
        const bool all_visible =
            n == kKt && p_max <= qpos && (a.window == 0 || int64_t{qpos} - p_min < a.window);
        if (!all_visible) MaskVisible(kpos, n, qpos, a.window, s[i]);
      }
      OnlineUpdate(s, nr, m.data() + r0, l + r0 * kN, alpha, true);
      for (int i = nr; i < kRowBlock; ++i) {  // padding rows: add nothing
        std::fill(s[i], s[i] + kKt, 0.0f);
        alpha[i] = 1.0f;
      }
      for (int i = 0; i < kRowBlock; i += kPvRows)
        AccumulatePV<kPvRows>(s + i, alpha + i, n, v, hdp, acc + (r0 + i) * hdp);
    }
  }
  const DF df;
  for (int64_t r = 0; r < qt.rows; ++r) {
    float* o = a.out.host<float>() + qt.qrow(d, r) * hd;
    const float lr = SumOf(df, hn::LoadU(df, l + r * kN));
    const float inv = lr > 0 ? 1.0f / lr : 0.0f;
    for (int64_t c = 0; c < hd; ++c) o[c] = acc[r * hdp + c] * inv;
  }
}

// Folds rows [r0, r1) of KV head qt.h into the running max m and partial sums l (kN per row) of
// every query row of qt, packed at qp; self: row t is visible to query i only if t - s0 <= i (the
// query's own prefix).
void LseRange(const AttnScoreArgs& a, const AttnDims& d, const QueryTile& qt, const float* qp,
              int64_t r0, int64_t r1, bool self, float* kt, float* m, float* l) {
  const int32_t* table = a.block_table.host<int32_t>();
  const int64_t hd = d.head_dim;
  for (int64_t t = r0; t < r1; t = TileEnd(t, r1)) {
    const int n = int(TileEnd(t, r1) - t);
    const int64_t slot = TileSlot(d, table, qt.h, t, n);
    LoadKTransposed(a.k_pool, slot, n, hd, kt);
    for (int64_t q0 = 0; q0 < qt.rows; q0 += kRowBlock) {
      HWY_ALIGN float s[kRowBlock][kKt];
      // Rows whose visible prefix is empty are computed and then dropped (self only).
      BlockLogits(qp + q0 * hd, hd, kt, a.scale, s);
      const int nr = int(std::min<int64_t>(kRowBlock, qt.rows - q0));
      for (int i = 0; i < nr; ++i) {
        const int64_t r = q0 + i;
        const int64_t last = self ? std::min<int64_t>(n, qt.i0 + r / d.group + a.s0 - t + 1) : n;
        if (last < kKt) MaskFrom(int(std::max<int64_t>(last, 0)), s[i]);
      }
      float alpha[kRowBlock];
      OnlineUpdate(s, nr, m + q0, l + q0 * kN, alpha, false);
    }
  }
}

// Pass 1 of attn_score for one item: lse[i, hq] over K_i = [0, n_sink) U [t0, t1) U [s0, s0 + i].
// qp: the packed rows of the item's KV head (its rows start a block: QueriesPerItem).
void ScoreLseItem(const AttnScoreArgs& a, const AttnDims& d, int64_t q_per_item, int64_t item,
                  const float* qp_head, float* lse) {
  const DF df;
  const QueryTile qt = MakeQueryTile(d, item, q_per_item);
  const float* qp = qp_head + qt.i0 * d.group * d.head_dim;
  Scratch buf(size_t(d.head_dim) * kKt + size_t(qt.rows) * kN);
  float* kt = buf.get();
  float* l = kt + d.head_dim * kKt;
  std::vector<float> m(qt.rows, kNegInf);
  LseRange(a, d, qt, qp, 0, a.n_sink, false, kt, m.data(), l);
  LseRange(a, d, qt, qp, a.t0, a.t1, false, kt, m.data(), l);
  LseRange(a, d, qt, qp, a.s0, a.s0 + qt.i0 + qt.n_i, true, kt, m.data(), l);
  for (int64_t r = 0; r < qt.rows; ++r)
    lse[qt.qrow(d, r)] = m[r] + std::log(SumOf(df, hn::LoadU(df, l + r * kN)));
}

// Pass 2 of attn_score for KV head h and the rows [t, t + n) of the chunk (one block tile):
// score = exp(max over queries and group heads of (logit - lse)). qp: the head's packed rows,
// lse_p: their lse in the same row order (spare rows repeat the last: the max is unchanged).
void ScoreMaxItem(const AttnScoreArgs& a, const AttnDims& d, int64_t h, int64_t t, int n,
                  const float* qp, const float* lse_p) {
  const DF df;
  const int64_t hd = d.head_dim, rows = d.n_q * d.group;
  const int64_t slot = TileSlot(d, a.block_table.host<int32_t>(), h, t, n);
  Scratch kt(size_t(hd) * kKt);
  LoadKTransposed(a.k_pool, slot, n, hd, kt.get());
  VF best[kKv];
  for (int v = 0; v < kKv; ++v) best[v] = hn::Set(df, kNegInf);
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    HWY_ALIGN float s[kRowBlock][kKt];
    BlockLogits(qp + r0 * hd, hd, kt.get(), a.scale, s);
    for (int i = 0; i < kRowBlock; ++i) {
      const VF li = hn::Set(df, lse_p[r0 + i]);
      for (int v = 0; v < kKv; ++v)
        best[v] = hn::Max(best[v], hn::Sub(hn::Load(df, s[i] + v * kN), li));
    }
  }
  HWY_ALIGN float b[kKt];
  for (int v = 0; v < kKv; ++v) hn::Store(best[v], df, b + v * kN);
  float* score = a.score.host<float>() + h * (a.t1 - a.t0) + (t - a.t0);
  for (int j = 0; j < n; ++j) score[j] = std::exp(b[j]);
}

// Threads only when the item work (rows x keys x head_dim) pays for a thread start.
int ThreadsFor(int n_threads, int64_t work) { return work < (int64_t{1} << 20) ? 1 : n_threads; }

void PagedAttentionFast(const PagedAttentionArgs& a, int n_threads) {
  const AttnDims d = check_paged_attention(a);
  if (d.n_q == 0) return;
  const int64_t q_per_item = QueriesPerItem(d);
  const int64_t n_items = d.n_kv_heads * ((d.n_q + q_per_item - 1) / q_per_item);
  const int64_t work = d.n_q * d.n_heads * d.max_blocks * kKvBlockTokens * d.head_dim;
  parallel_for(n_items, ThreadsFor(n_threads, work),
               [&](int, int64_t item) { AttentionItem(a, d, q_per_item, item); });
}

void AttnScoreFast(const AttnScoreArgs& a, int n_threads) {
  const AttnDims d = check_attn_score(a);
  if (d.n_q == 0 || a.t1 == a.t0) return;
  const int64_t work = d.n_q * d.n_heads * (a.t1 - a.t0 + a.n_sink + d.n_q) * d.head_dim;
  n_threads = ThreadsFor(n_threads, work);
  // Every KV head's rows packed once for both passes, and their lse in the same order.
  const int64_t rows_p = RoundUp(d.n_q * d.group, kRowBlock), hd = d.head_dim;
  Scratch qp(size_t(d.n_kv_heads) * rows_p * hd);
  std::vector<float> lse(d.n_q * d.n_heads), lse_p(d.n_kv_heads * rows_p);
  parallel_for(d.n_kv_heads, n_threads, [&](int, int64_t h) {
    PackQ(a.q.host<float>(), d, QueryTile{h, 0, d.n_q, d.n_q * d.group},
          qp.get() + h * rows_p * hd);
  });
  const int64_t q_per_item = QueriesPerItem(d);
  const int64_t n_q_tiles = (d.n_q + q_per_item - 1) / q_per_item;
  parallel_for(d.n_kv_heads * n_q_tiles, n_threads, [&](int, int64_t item) {
    ScoreLseItem(a, d, q_per_item, item, qp.get() + item / n_q_tiles * rows_p * hd, lse.data());
  });
  for (int64_t h = 0; h < d.n_kv_heads; ++h) {
    const QueryTile all{h, 0, d.n_q, d.n_q * d.group};
    for (int64_t r = 0; r < rows_p; ++r) lse_p[h * rows_p + r] = lse[all.qrow(d, r)];
  }
  const int64_t first = a.t0 / kKt, n_tiles = (a.t1 - 1) / kKt - first + 1;
  parallel_for(d.n_kv_heads * n_tiles, n_threads, [&](int, int64_t item) {
    const int64_t h = item / n_tiles, k = item % n_tiles;
    const int64_t t = std::max<int64_t>(a.t0, (first + k) * kKt);
    const int64_t end = std::min<int64_t>(a.t1, (first + k + 1) * kKt);
    ScoreMaxItem(a, d, h, t, int(end - t), qp.get() + h * rows_p * hd, lse_p.data() + h * rows_p);
  });
}

}  // namespace kvz::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvz::cpu {

HWY_EXPORT(PagedAttentionFast);
HWY_EXPORT(AttnScoreFast);

void paged_attention_fast(const PagedAttentionArgs& a, int n_threads) {
  HWY_DYNAMIC_DISPATCH(PagedAttentionFast)(a, n_threads);
}

void attn_score_fast(const AttnScoreArgs& a, int n_threads) {
  HWY_DYNAMIC_DISPATCH(AttnScoreFast)(a, n_threads);
}

}  // namespace kvz::cpu
#endif  // HWY_ONCE
