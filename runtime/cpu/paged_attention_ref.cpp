// Scalar references for paged attention and KVzip reconstruction scoring, plus the shape checks
// the ops share (runtime/cpu). Double accumulation; obviously correct over speed.
#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/cpu/attention_dims.h"
#include "runtime/cpu/half.h"
#include "runtime/kv_quant.h"

namespace kvz::cpu {
namespace {

AttnDims check_common(const Tensor& q, const Tensor& k_pool, const Tensor& block_table,
                      int64_t n_kv_heads, const char* what) {
  KVZ_CHECK(q.dtype() == DType::kF32 && q.ndim() == 3,
            "{}: q must be [n_q, n_heads, head_dim] "
            "f32, got {}",
            what, q.shape_str());
  KVZ_CHECK(
      is_kv_cache_type(k_pool.dtype()) && k_pool.ndim() == 3 && k_pool.dim(1) == kKvBlockTokens,
      "{}: k_pool must be [n_blocks, 32, head_dim] f16/q8_0/q4_0, got {} {}", what,
      dtype_name(k_pool.dtype()), k_pool.shape_str());
  KVZ_CHECK(block_table.dtype() == DType::kI32 && block_table.ndim() == 2 &&
                block_table.dim(0) == n_kv_heads,
            "{}: block_table {} for {} KV heads", what, block_table.shape_str(), n_kv_heads);
  AttnDims d{q.dim(0), q.dim(1), n_kv_heads, q.dim(2), 0, block_table.dim(1), k_pool.rows()};
  KVZ_CHECK(
      d.head_dim == k_pool.cols() && d.head_dim % 4 == 0 && d.head_dim >= 4 && d.head_dim <= 256,
      "{}: head_dim {} (k_pool {}) must match and be a multiple of 4 in [4, 256]", what, d.head_dim,
      k_pool.shape_str());
  KVZ_CHECK(n_kv_heads > 0 && d.n_heads % n_kv_heads == 0, "{}: {} heads over {} KV heads", what,
            d.n_heads, n_kv_heads);
  d.group = d.n_heads / n_kv_heads;
  (void)kv_row_bytes(k_pool.dtype(), d.head_dim);  // head_dim % 32 for quantised pools
  return d;
}

// Slot of row t of KV head h, checked.
int64_t slot_of(const AttnDims& d, const int32_t* table, int64_t h, int64_t t) {
  const int64_t b = table[h * d.max_blocks + t / kKvBlockTokens];
  const int64_t s = b * kKvBlockTokens + t % kKvBlockTokens;
  KVZ_CHECK(s >= 0 && s < d.n_slots, "attention: head {} row {} maps to slot {} of {}", h, t, s,
            d.n_slots);
  return s;
}

// Row `slot` of a pool (any KV type) as f32.
std::vector<float> pool_row(const Tensor& pool, int64_t slot) {
  const int64_t hd = pool.cols();
  std::vector<float> r(static_cast<size_t>(hd));
  dequantize_kv_row(pool.dtype(), pool.host<uint8_t>() + slot * kv_row_bytes(pool.dtype(), hd),
                    r.data(), hd);
  return r;
}

double dot_row(const float* q, const Tensor& pool, int64_t slot) {
  const std::vector<float> k = pool_row(pool, slot);
  double s = 0;
  for (size_t c = 0; c < k.size(); ++c) s += double(q[c]) * k[c];
  return s;
}

}  // namespace

AttnDims check_paged_attention(const PagedAttentionArgs& a) {
  const AttnDims d = check_common(a.q, a.k_pool, a.block_table, a.lens.numel(), "paged_attention");
  KVZ_CHECK(a.lens.dtype() == DType::kI32 && a.q_pos.dtype() == DType::kI32 &&
                a.q_pos.numel() == d.n_q && a.pos_pool.dtype() == DType::kI32 &&
                a.pos_pool.numel() == d.n_slots,
            "paged_attention: lens {} q_pos {} pos_pool {} (i32; n_q {}, slots {})",
            a.lens.shape_str(), a.q_pos.shape_str(), a.pos_pool.shape_str(), d.n_q, d.n_slots);
  KVZ_CHECK(is_kv_cache_type(a.v_pool.dtype()) && same_shape(a.k_pool, a.v_pool),
            "paged_attention: v_pool {} vs k_pool {}", a.v_pool.shape_str(), a.k_pool.shape_str());
  (void)kv_row_bytes(a.v_pool.dtype(), d.head_dim);
  KVZ_CHECK(a.out.dtype() == DType::kF32 && same_shape(a.out, a.q),
            "paged_attention: out {} vs q {}", a.out.shape_str(), a.q.shape_str());
  KVZ_CHECK(a.window >= 0 && a.softcap >= 0, "paged_attention: window {} softcap {}", a.window,
            a.softcap);
  return d;
}

AttnDims check_attn_score(const AttnScoreArgs& a) {
  const AttnDims d = check_common(a.q, a.k_pool, a.block_table, a.block_table.dim(0), "attn_score");
  KVZ_CHECK(0 <= a.n_sink && a.n_sink <= a.t0 && a.t0 <= a.t1 && a.t1 <= a.s0 &&
                a.s0 + d.n_q <= d.max_blocks * kKvBlockTokens,
            "attn_score: need 0 <= n_sink {} <= t0 {} <= t1 {} <= s0 {}, s0 + n_q {} <= rows {}",
            a.n_sink, a.t0, a.t1, a.s0, a.s0 + d.n_q, d.max_blocks * kKvBlockTokens);
  KVZ_CHECK(a.score.dtype() == DType::kF32 && a.score.numel() == d.n_kv_heads * (a.t1 - a.t0),
            "attn_score: score {} for {} KV heads x {} rows", a.score.shape_str(), d.n_kv_heads,
            a.t1 - a.t0);
  return d;
}

void paged_attention_ref(const PagedAttentionArgs& a) {
  const AttnDims d = check_paged_attention(a);
  const int32_t* table = a.block_table.host<int32_t>();
  const int32_t* pos = a.pos_pool.host<int32_t>();
  const int64_t hd = d.head_dim;
  std::vector<double> s, acc(hd);
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < d.n_q; ++i) {
    const int64_t qp = a.q_pos.host<int32_t>()[i];
    for (int64_t hq = 0; hq < d.n_heads; ++hq) {
      const int64_t h = hq / d.group;
      const int64_t len =
          std::clamp<int64_t>(a.lens.host<int32_t>()[h], 0, d.max_blocks * kKvBlockTokens);
      const float* qv = a.q.host<float>() + (i * d.n_heads + hq) * hd;
      rows.clear(), s.clear();
      for (int64_t t = 0; t < len; ++t) {  // visible rows and their logits
        const int64_t slot = slot_of(d, table, h, t), kpos = pos[slot];
        if (kpos > qp || (a.window > 0 && qp - kpos >= a.window)) continue;
        double x = a.scale * dot_row(qv, a.k_pool, slot);
        if (a.softcap > 0) x = a.softcap * std::tanh(x / a.softcap);
        rows.push_back(slot), s.push_back(x);
      }
      const double m = s.empty() ? 0.0 : *std::max_element(s.begin(), s.end());
      double l = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (size_t j = 0; j < rows.size(); ++j) {
        const double e = std::exp(s[j] - m);
        l += e;
        const std::vector<float> v = pool_row(a.v_pool, rows[j]);
        for (int64_t c = 0; c < hd; ++c) acc[c] += e * v[c];
      }
      float* o = a.out.host<float>() + (i * d.n_heads + hq) * hd;
      for (int64_t c = 0; c < hd; ++c) o[c] = l > 0 ? static_cast<float>(acc[c] / l) : 0.0f;
    }
  }
}

void attn_score_ref(const AttnScoreArgs& a) {
  const AttnDims d = check_attn_score(a);
  const int32_t* table = a.block_table.host<int32_t>();
  const int64_t hd = d.head_dim, m_t = a.t1 - a.t0;
  float* score = a.score.host<float>();
  std::fill(score, score + d.n_kv_heads * m_t, 0.0f);
  std::vector<double> chunk(m_t);
  for (int64_t hq = 0; hq < d.n_heads; ++hq) {
    const int64_t h = hq / d.group;
    for (int64_t i = 0; i < d.n_q; ++i) {
      const float* qv = a.q.host<float>() + (i * d.n_heads + hq) * hd;
      auto logit = [&](int64_t t) {
        return a.scale * dot_row(qv, a.k_pool, slot_of(d, table, h, t));
      };
      // Key set K_i = [0, n_sink) U [t0, t1) U [s0, s0 + i]: log-sum-exp, then the chunk columns.
      std::vector<double> other;
      for (int64_t t = 0; t < a.n_sink; ++t) other.push_back(logit(t));
      for (int64_t t = a.s0; t <= a.s0 + i; ++t) other.push_back(logit(t));
      for (int64_t j = 0; j < m_t; ++j) chunk[j] = logit(a.t0 + j);
      double m = *std::max_element(other.begin(), other.end());
      for (double x : chunk) m = std::max(m, x);
      double l = 0;
      for (double x : other) l += std::exp(x - m);
      for (double x : chunk) l += std::exp(x - m);
      const double lse = m + std::log(l);
      for (int64_t j = 0; j < m_t; ++j)
        score[h * m_t + j] =
            std::max(score[h * m_t + j], static_cast<float>(std::exp(chunk[j] - lse)));
    }
  }
}

}  // namespace kvz::cpu
