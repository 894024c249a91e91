// Expected Attention (kvzip/): scores each context KV pair by the attention that future queries are
// expected to pay it, from the mean and covariance of the prefill queries (kvpress
// expected_attention_press; ALGORITHMS.md 4). The statistics are gathered while the context is
// prefilled (the model's layer hook hands over post-RoPE queries, rotated back here); scoring runs
// on the host over the downloaded cache, like the other baselines (kvzip/baselines.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kvzip/kv_cache.h"
#include "kvzip/scores.h"
#include "runtime/ops/rope.h"

namespace kvz {

// The rotary embedding one layer applies to q and k (runtime/ops/rope.h): angle
// fp32(pos * inv_freq[i]) on the pairs of `style`, cos/sin scaled by attn_factor; dimensions past
// rot_dims are not rotated.
struct RopeSpec {
  RopeStyle style = RopeStyle::kNeox;
  std::vector<float> inv_freq;  // [rot_dims / 2]
  float attn_factor = 1.0f;
  int rot_dims() const { return 2 * static_cast<int>(inv_freq.size()); }
};

// The mean of the (attn_factor-scaled) rotation matrices of positions [p0, p0 + n): row-major
// [head_dim, head_dim] f64. Applied to a pre-RoPE vector x, R(p) x is what rope() produces at p.
std::vector<double> mean_rotation(const RopeSpec& rope, int head_dim, int64_t p0, int n);

// Running mean and covariance of every layer's pre-RoPE queries, per query head (kvpress
// get_query_statistics: first n_sink positions skipped as outliers, population covariance).
class QueryStats {
 public:
  // `rope`: one spec per layer (sliding-window layers may use another base).
  QueryStats(int n_layers, int n_heads, int head_dim, std::vector<RopeSpec> rope, int n_sink = 4);

  // q: [n_tokens, n_heads, head_dim] f32 post-RoPE queries at positions pos0, pos0 + 1, ...
  // Each is rotated back to pre-RoPE (exact up to rounding: rotations are orthogonal).
  void add(int il, std::span<const float> q, int32_t pos0);

  int n_layers() const { return static_cast<int>(count_.size()); }
  int n_heads() const { return n_heads_; }
  int head_dim() const { return head_dim_; }
  int64_t count(int il) const { return count_[static_cast<size_t>(il)]; }
  const RopeSpec& rope(int il) const { return rope_[static_cast<size_t>(il)]; }
  // [n_heads, head_dim] f64; requires count(il) > 0.
  std::vector<double> mean(int il) const;
  // [n_heads, head_dim, head_dim] f64, sum of outer products of deviations / count.
  std::vector<double> covariance(int il) const;

 private:
  int n_heads_, head_dim_, n_sink_;
  std::vector<RopeSpec> rope_;
  std::vector<std::vector<double>> sum_;     // [n_layers][n_heads, head_dim]
  std::vector<std::vector<double>> sum_sq_;  // [n_layers][n_heads, head_dim, head_dim]
  std::vector<int64_t> count_;               // [n_layers]
};

struct ExpectedAttentionOptions {
  int n_future = 512;    // future positions whose rotations are averaged (kvpress default)
  int n_sink = 4;        // first cache rows: left out of the softmax, scored the layer max
  float epsilon = 0.0f;  // scores become (score + epsilon) * ||v|| (kvpress default 0)
  bool use_covariance = true;
  bool use_vnorm = true;
};

// Expected Attention scores of the context rows [n_prefix, n_prefix + n_ctx) of `cache` (which
// must hold every prefilled row in position order). Per layer, with N = n_prefix + n_ctx
// prefilled rows, R the mean rotation over positions [N, N + n_future), mu' = R mu and
// S' = R S R^T: z_r = mu'.k_r / sqrt(d) + k_r^T S' k_r / (2d) for rows r in [n_sink, N), softmax
// over those rows per query head, mean over the GQA group, times ||v_r|| (plus epsilon first);
// the first n_sink rows get the layer's maximum. Throws InputError when N <= n_sink or a layer
// saw no queries.
Scores expected_attention_scores(const QueryStats& stats, const KvCache& cache, int64_t n_prefix,
                                 int64_t n_ctx, const ExpectedAttentionOptions& o = {});

}  // namespace kvz
