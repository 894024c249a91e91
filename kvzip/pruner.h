// Which KV pairs survive (kvzip/): KVzip's global threshold over all layers and heads (non-uniform
// head budgets), the uniform per-head variant, head-level pruning, and kvpress' bottom-k rule.
// ALGORITHMS.md 2.1, 2.2, 2.6. `ratio` is always the fraction of context pairs KEPT.
#pragma once

#include <vector>

#include "kvzip/kv_cache.h"
#include "kvzip/scores.h"

namespace kvz {

// Throws InputError unless 0 < ratio <= 1.
void check_ratio(double ratio);

// Original KVzip rule (KVzip repo attention/score.py _threshold): stack the scores of every
// prunable layer, sort descending, thr = sorted[max(int(len * ratio) - 1, 0)], keep score > thr
// (ties at thr are evicted, so slightly fewer than ratio may stay). ratio == 1 keeps everything.
// Rows [0, n_prefix) (system prefix) and rows >= n_prefix + n_ctx are always kept; non-prunable
// layers keep all rows. n_rows = rows per head in the cache.
KeepSet prune_pair(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                   const std::vector<bool>& prunable = {});
// Per (layer, head): the top int(n_ctx * ratio) scores (ties: lower position first).
KeepSet prune_pair_uniform(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                           const std::vector<bool>& prunable = {});
// Head-level: every pair of head (l, h) gets S_head[l, h]; then prune_pair's rule, so heads are
// kept or dropped whole (a dropped head keeps only its prefix and later rows).
KeepSet prune_head(const HeadScores& hs, double ratio, int64_t n_prefix, int64_t n_rows, int64_t n_ctx,
                   const std::vector<bool>& prunable = {});
// kvpress KVzipPress.compress_post: over all rows [0, n_prefix + n_ctx) of every layer, the first
// 4 rows score 1, the rest of the prefix 0, then the int(numel * (1 - ratio)) lowest are removed
// (ties: lower score first, then later layer/head/position first, deterministic).
KeepSet prune_kvpress(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows);

}  // namespace kvz
