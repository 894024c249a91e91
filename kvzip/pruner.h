// Which KV pairs survive (kvzip/): KVzip's global threshold over all layers and heads (non-uniform
// head budgets), the uniform per-head variant, head-level pruning, AdaKV's per-layer budgets and
// kvpress' bottom-k rule. ALGORITHMS.md 2.1, 2.2, 2.6, 4. `ratio` is always the fraction of context
// pairs KEPT (kvpress' compression_ratio is 1 - ratio). Rows [0, n_prefix) are the system prefix,
// rows [n_prefix, n_prefix + s.n_ctx) the scored context, later rows (queries, answers) are never
// evicted; n_rows = rows per head in the cache. Non-prunable layers keep every row.
#pragma once

#include <vector>

#include "kvzip/kv_cache.h"
#include "kvzip/scores.h"

namespace kvz {

// Throws InputError unless 0 < ratio <= 1.
void check_ratio(double ratio);

// How the global threshold treats the budget and ties (ALGORITHMS.md 2.1, STYLE B8).
enum class BudgetRule {
  // Exactly round(ratio * n_total) context pairs are kept over all prunable layers and heads: the
  // highest scores; among equal scores the lower context position wins, then the lower layer, then
  // the lower head. Deterministic, and the kept counts sum to the budget.
  kExact,
  // The KVzip repo's _threshold: thr = sorted_desc[max(int(n_total * ratio) - 1, 0)], keep
  // score > thr. Ties at thr are all evicted, so fewer than the budget may stay (reference parity).
  kOriginalStrict,
};

// Pair-level KVzip pruning with one threshold across all prunable layers and heads. ratio == 1
// keeps everything under either rule.
KeepSet prune_pair(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                   const std::vector<bool>& prunable = {}, BudgetRule rule = BudgetRule::kExact);
// Per (layer, head): the top int(n_ctx * ratio) scores (ties: lower position first).
KeepSet prune_pair_uniform(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                           const std::vector<bool>& prunable = {});
// Per layer il: the top n_kept[il] scores of every head (ties: lower position first). The
// uniform rule above is the case of equal budgets.
KeepSet prune_layer_budgets(const Scores& s, const std::vector<int64_t>& n_kept, int64_t n_prefix,
                            int64_t n_rows, const std::vector<bool>& prunable = {});
// PyramidKV's layer budgets (ALGORITHMS.md 4, kvpress PyramidKVPress.get_layer_budget): context
// rows kept per head in each layer, decreasing linearly from max_num (layer 0) to min_num (last
// layer) with K = n_ctx * ratio the mean: min_num = K / beta, max_num = 2K - min_num; when max_num
// would exceed n_ctx it is capped there and min_num = 2K - n_ctx. kvpress counts its observation
// window inside the budget and requires min_num >= window; when that (or n_layers > 1) fails,
// every layer gets round(K), SnapKV's uniform budget, as kvpress falls back. In the
// query-agnostic evaluation the window is not part of the context, so window = 0.
std::vector<int64_t> pyramid_budgets(int n_layers, int64_t n_ctx, double ratio, int64_t window = 0,
                                     double beta = 20.0);
// Head-level (ALGORITHMS.md 2.6): every context pair of head (l, h) gets S_head[l, h], then the
// reference's strict global threshold (kOriginalStrict), so heads are kept or dropped whole; a
// dropped head keeps only its prefix and later rows.
KeepSet prune_head(const HeadScores& hs, double ratio, int64_t n_prefix, int64_t n_rows,
                   int64_t n_ctx, const std::vector<bool>& prunable = {});
// AdaKV (ALGORITHMS.md 4, kvpress adakv_press): in every prunable layer with H KV heads,
// n_kept = int(n_ctx * ratio) (prune_pair_uniform's per-head budget); each head's top
// int(alpha * n_kept) rows are forced kept (AdaKV's safeguard), then the layer keeps H * n_kept
// rows, the forced ones and the highest-scored others across all its heads: every layer keeps the
// uniform split's total, heads get non-uniform shares. Ties: lower position first, then lower head
// (within a head's safeguard: lower position first). NaN scores count as lowest.
KeepSet prune_adakv(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                    const std::vector<bool>& prunable = {}, double alpha = 0.2);
// kvpress KVzipPress.compress_post: over all rows [0, n_prefix + n_ctx) of every prunable layer,
// rows 0..3 (n_sink) score 1, the rest of the prefix 0 (never scored, so evicted first), context
// rows their score; then the int(numel * (1 - ratio)) lowest are removed (ties: the later
// layer/head/row first, deterministic).
KeepSet prune_kvpress(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                      const std::vector<bool>& prunable = {});

// KVzap's threshold + window rule applied after a dense prefill (ALGORITHMS.md 3.4, as kvpress
// masks): context row j (position n_prefix + j) is decided iff n_prefix + j < n_rows - window,
// i.e. it left the window of a cache holding n_rows rows, and evicted iff its score is below
// `threshold` (NaN counts as below). The prefix and later rows are kept, as for every method here.
KeepSet prune_threshold(const Scores& s, float threshold, int window, int64_t n_prefix,
                        int64_t n_rows, const std::vector<bool>& prunable = {});

}  // namespace kvz
