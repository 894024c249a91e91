// Pruning rules (kvzip/). See pruner.h; the KVzip paper's Eq. 2 scores feed a global threshold.
#include "kvzip/pruner.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kvz {
namespace {

bool prunable_layer(const std::vector<bool>& p, int il) { return p.empty() || p[il]; }

// NaN sorts below everything, so the order stays a strict weak order.
float key(float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; }

void check_shapes(const Scores& s, int64_t n_prefix, int64_t n_rows,
                  const std::vector<bool>& prunable) {
  KVZ_CHECK(n_prefix >= 0 && n_rows >= n_prefix + s.n_ctx,
            "cache has {} rows, scores cover {} + {}", n_rows, n_prefix, s.n_ctx);
  KVZ_CHECK(prunable.empty() || static_cast<int>(prunable.size()) == s.n_layers,
            "prunable has {} entries for {} layers", prunable.size(), s.n_layers);
}

// Keeps prefix and tail rows plus the context rows selected by `keep_ctx(il, ih, j)`.
template <class F>
KeepSet build(int L, int H, int64_t n_prefix, int64_t n_ctx, int64_t n_rows,
              const std::vector<bool>& prunable, F keep_ctx) {
  KeepSet k;
  k.rows.assign(static_cast<size_t>(L), std::vector<std::vector<int32_t>>(static_cast<size_t>(H)));
  for (int il = 0; il < L; ++il) {
    bool p = prunable_layer(prunable, il);
    for (int ih = 0; ih < H; ++ih) {
      auto& r = k.rows[il][ih];
      for (int64_t row = 0; row < n_rows; ++row) {
        int64_t j = row - n_prefix;
        bool in_ctx = j >= 0 && j < n_ctx;
        bool keep = !in_ctx || !p || keep_ctx(il, ih, j);
        if (keep) r.push_back(static_cast<int32_t>(row));
        if (in_ctx && p) {
          k.n_total++;
          k.n_kept += keep;
        }
      }
    }
  }
  k.kept_fraction =
      k.n_total ? static_cast<double>(k.n_kept) / static_cast<double>(k.n_total) : 1.0;
  return k;
}

KeepSet keep_all(const Scores& s, int64_t n_prefix, int64_t n_rows,
                 const std::vector<bool>& prunable) {
  return build(s.n_layers, s.n_kv_heads, n_prefix, s.n_ctx, n_rows, prunable,
               [](int, int, int64_t) { return true; });
}

// Exact budget: everything above the n_keep-th largest score, then the ties at it in the order
// (position, layer, head). No sort: ties are counted per position, the position where the budget
// runs out found by a prefix sum, and only there the (layer, head) order decides (a random-weight
// model's scores are mostly exact zeros, millions of ties at the threshold).
KeepSet prune_exact(const Scores& s, const std::vector<float>& all, double ratio, int64_t n_prefix,
                    int64_t n_rows, const std::vector<bool>& prunable) {
  const auto n_keep = static_cast<int64_t>(std::llround(ratio * static_cast<double>(all.size())));
  if (n_keep == 0)
    return build(s.n_layers, s.n_kv_heads, n_prefix, s.n_ctx, n_rows, prunable,
                 [](int, int, int64_t) { return false; });
  std::vector<float> sorted(all.size());
  std::transform(all.begin(), all.end(), sorted.begin(), key);
  std::nth_element(sorted.begin(), sorted.begin() + (n_keep - 1), sorted.end(),
                   std::greater<float>());
  const float thr = sorted[static_cast<size_t>(n_keep - 1)];
  int64_t above = 0;
  std::vector<int64_t> ties_at(static_cast<size_t>(s.n_ctx), 0);  // ties per position
  for (int il = 0; il < s.n_layers; ++il) {
    if (!prunable_layer(prunable, il)) continue;
    for (int ih = 0; ih < s.n_kv_heads; ++ih)
      for (int64_t j = 0; j < s.n_ctx; ++j) {
        const float x = key(s.at(il, ih, j));
        above += x > thr;
        ties_at[static_cast<size_t>(j)] += x == thr;
      }
  }
  // Ties at positions < j_cut are kept, at j_cut the first `rest` in (layer, head) order.
  int64_t rest = n_keep - above, j_cut = 0;
  KVZ_CHECK(rest > 0, "threshold bookkeeping");
  while (j_cut < s.n_ctx && ties_at[static_cast<size_t>(j_cut)] < rest)
    rest -= ties_at[static_cast<size_t>(j_cut++)];
  KVZ_CHECK(j_cut < s.n_ctx, "threshold bookkeeping");
  std::vector<uint8_t> keep_at_cut(static_cast<size_t>(s.n_layers) * s.n_kv_heads, 0);
  for (int il = 0; il < s.n_layers && rest > 0; ++il) {
    if (!prunable_layer(prunable, il)) continue;
    for (int ih = 0; ih < s.n_kv_heads && rest > 0; ++ih)
      if (key(s.at(il, ih, j_cut)) == thr) {
        keep_at_cut[static_cast<size_t>(il) * s.n_kv_heads + ih] = 1;
        --rest;
      }
  }
  return build(s.n_layers, s.n_kv_heads, n_prefix, s.n_ctx, n_rows, prunable,
               [&](int il, int ih, int64_t j) {
                 const float x = key(s.at(il, ih, j));
                 return x > thr ||
                        (x == thr &&
                         (j < j_cut || (j == j_cut &&
                                        keep_at_cut[static_cast<size_t>(il) * s.n_kv_heads + ih])));
               });
}

// The context rows of head (il, ih) in `order` (n_ctx long), highest score first; ties keep
// position order, NaN scores come last.
void rank_rows(const Scores& s, int il, int ih, std::vector<int64_t>& order) {
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return key(s.at(il, ih, a)) > key(s.at(il, ih, b));
  });
}

}  // namespace

void check_ratio(double ratio) {
  if (!(ratio > 0.0 && ratio <= 1.0))
    throw InputError(
        fmt::format("ratio {} is out of range (0, 1]: it is the fraction of context KV "
                    "pairs kept (kvpress' compression_ratio is 1 - ratio)",
                    ratio));
}

KeepSet prune_pair(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                   const std::vector<bool>& prunable, BudgetRule rule) {
  check_ratio(ratio);
  check_shapes(s, n_prefix, n_rows, prunable);
  std::vector<float> all;
  for (int il = 0; il < s.n_layers; ++il)
    if (prunable_layer(prunable, il))
      all.insert(all.end(), s.data.begin() + static_cast<int64_t>(s.index(il, 0, 0)),
                 s.data.begin() + static_cast<int64_t>(s.index(il, 0, 0)) + s.n_kv_heads * s.n_ctx);
  if (ratio >= 1.0 || all.empty()) return keep_all(s, n_prefix, n_rows, prunable);
  if (rule == BudgetRule::kExact) return prune_exact(s, all, ratio, n_prefix, n_rows, prunable);
  // KVzip repo attention/score.py _threshold.
  auto n = static_cast<size_t>(
      std::max<int64_t>(static_cast<int64_t>(static_cast<double>(all.size()) * ratio) - 1, 0));
  std::transform(all.begin(), all.end(), all.begin(), key);
  std::nth_element(all.begin(), all.begin() + static_cast<int64_t>(n), all.end(),
                   std::greater<float>());
  const float thr = all[n];
  return build(s.n_layers, s.n_kv_heads, n_prefix, s.n_ctx, n_rows, prunable,
               [&](int il, int ih, int64_t j) { return key(s.at(il, ih, j)) > thr; });
}

KeepSet prune_pair_uniform(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                           const std::vector<bool>& prunable) {
  check_ratio(ratio);
  check_shapes(s, n_prefix, n_rows, prunable);
  if (ratio >= 1.0) return keep_all(s, n_prefix, n_rows, prunable);
  const auto budget =
      static_cast<int64_t>(static_cast<double>(s.n_ctx) * ratio);  // the repo's int()
  return prune_layer_budgets(s, std::vector<int64_t>(static_cast<size_t>(s.n_layers), budget),
                             n_prefix, n_rows, prunable);
}

KeepSet prune_layer_budgets(const Scores& s, const std::vector<int64_t>& n_kept, int64_t n_prefix,
                            int64_t n_rows, const std::vector<bool>& prunable) {
  check_shapes(s, n_prefix, n_rows, prunable);
  KVZ_CHECK(static_cast<int>(n_kept.size()) == s.n_layers, "{} layer budgets for {} layers",
            n_kept.size(), s.n_layers);
  std::vector<uint8_t> keep(s.data.size(), 0);
  std::vector<int64_t> order(static_cast<size_t>(s.n_ctx));
  for (int il = 0; il < s.n_layers; ++il) {
    const int64_t budget = n_kept[static_cast<size_t>(il)];
    KVZ_CHECK(budget >= 0 && budget <= s.n_ctx, "layer {} budget {} of {} rows", il, budget,
              s.n_ctx);
    for (int ih = 0; ih < s.n_kv_heads; ++ih) {
      rank_rows(s, il, ih, order);
      for (int64_t i = 0; i < budget; ++i) keep[s.index(il, ih, order[i])] = 1;
    }
  }
  return build(s.n_layers, s.n_kv_heads, n_prefix, s.n_ctx, n_rows, prunable,
               [&](int il, int ih, int64_t j) { return keep[s.index(il, ih, j)] != 0; });
}

std::vector<int64_t> pyramid_budgets(int n_layers, int64_t n_ctx, double ratio, int64_t window,
                                     double beta) {
  check_ratio(ratio);
  KVZ_CHECK(n_layers > 0 && n_ctx >= 0 && window >= 0 && beta >= 1.0,
            "pyramid of {} layers, {} rows, window {}, beta {}", n_layers, n_ctx, window, beta);
  // kvpress PyramidKVPress.get_layer_budget with max_capacity_prompt - window_size = K: the
  // window is not part of the context rows here, so the cap is n_ctx itself.
  const auto n = static_cast<double>(n_ctx);
  const double k = n * ratio;
  double min_num = k / beta, max_num = 2 * k - min_num;
  if (max_num >= n) {
    max_num = n;
    min_num = 2 * k - max_num;
  }
  const bool feasible =
      n_layers > 1 && n >= max_num && max_num >= min_num && min_num >= static_cast<double>(window);
  std::vector<int64_t> out(static_cast<size_t>(n_layers));
  for (int il = 0; il < n_layers; ++il) {
    // Python's round(): half to even (std::nearbyint in the default rounding mode).
    const double b = feasible ? std::nearbyint(max_num - il * (max_num - min_num) / (n_layers - 1))
                              : std::nearbyint(k);  // kvpress' fallback: SnapKV's uniform budget
    out[static_cast<size_t>(il)] = std::clamp<int64_t>(static_cast<int64_t>(b), 0, n_ctx);
  }
  return out;
}

KeepSet prune_head(const HeadScores& hs, double ratio, int64_t n_prefix, int64_t n_rows,
                   int64_t n_ctx, const std::vector<bool>& prunable) {
  KVZ_CHECK(hs.data.size() == static_cast<size_t>(hs.n_layers) * static_cast<size_t>(hs.n_kv_heads),
            "head scores: {} values for {} x {}", hs.data.size(), hs.n_layers, hs.n_kv_heads);
  Scores s(hs.n_layers, hs.n_kv_heads, n_ctx);
  for (int il = 0; il < hs.n_layers; ++il)
    for (int ih = 0; ih < hs.n_kv_heads; ++ih)
      std::fill_n(s.data.begin() + static_cast<int64_t>(s.index(il, ih, 0)), n_ctx, hs.at(il, ih));
  return prune_pair(s, ratio, n_prefix, n_rows, prunable, BudgetRule::kOriginalStrict);
}

KeepSet prune_kvpress(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                      const std::vector<bool>& prunable) {
  check_ratio(ratio);
  check_shapes(s, n_prefix, n_rows, prunable);
  constexpr int64_t kSink = 4;  // kvpress n_sink
  const int64_t N = n_prefix + s.n_ctx, H = s.n_kv_heads;
  std::vector<int> layers;  // prunable layers, in order
  for (int il = 0; il < s.n_layers; ++il)
    if (prunable_layer(prunable, il)) layers.push_back(il);
  auto full_score = [&](int il, int64_t ih, int64_t row) -> float {
    if (row < kSink) return 1.0f;
    if (row < n_prefix) return 0.0f;
    return key(s.at(il, static_cast<int>(ih), row - n_prefix));
  };
  const int64_t numel = static_cast<int64_t>(layers.size()) * H * N;
  const auto n_pruned = static_cast<int64_t>(static_cast<double>(numel) * (1.0 - ratio));
  // Flat index i = (layer slot, head, row) over the prunable layers.
  auto score_of = [&](int64_t i) {
    return full_score(layers[static_cast<size_t>(i / (H * N))], (i / N) % H, i % N);
  };
  std::vector<int64_t> idx(static_cast<size_t>(numel));
  std::iota(idx.begin(), idx.end(), 0);
  std::nth_element(idx.begin(), idx.begin() + n_pruned, idx.end(), [&](int64_t a, int64_t b) {
    float sa = score_of(a), sb = score_of(b);
    return sa != sb ? sa < sb : a > b;
  });
  std::vector<uint8_t> removed(static_cast<size_t>(numel), 0);
  for (int64_t i = 0; i < n_pruned; ++i) removed[static_cast<size_t>(idx[i])] = 1;
  KeepSet k;
  k.rows.assign(static_cast<size_t>(s.n_layers),
                std::vector<std::vector<int32_t>>(static_cast<size_t>(H)));
  for (int il = 0; il < s.n_layers; ++il) {
    auto slot = std::find(layers.begin(), layers.end(), il);
    const bool p = slot != layers.end();
    const int64_t base = p ? (slot - layers.begin()) * H * N : 0;
    for (int64_t ih = 0; ih < H; ++ih)
      for (int64_t row = 0; row < n_rows; ++row) {
        bool keep = !p || row >= N || !removed[static_cast<size_t>(base + ih * N + row)];
        if (keep) k.rows[il][ih].push_back(static_cast<int32_t>(row));
        if (p && row >= n_prefix && row < N) {
          k.n_total++;
          k.n_kept += keep;
        }
      }
  }
  k.kept_fraction =
      k.n_total ? static_cast<double>(k.n_kept) / static_cast<double>(k.n_total) : 1.0;
  return k;
}

KeepSet prune_adakv(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                    const std::vector<bool>& prunable, double alpha) {
  check_ratio(ratio);
  check_shapes(s, n_prefix, n_rows, prunable);
  KVZ_CHECK(alpha >= 0.0 && alpha <= 1.0, "AdaKV safeguard alpha {}", alpha);
  const int H = s.n_kv_heads;
  const int64_t n = s.n_ctx;
  const auto n_kept = static_cast<int64_t>(static_cast<double>(n) * ratio);  // the uniform int()
  const auto n_safe = static_cast<int64_t>(static_cast<double>(n_kept) * alpha);
  std::vector<uint8_t> keep(s.data.size(), 0);
  std::vector<uint8_t> forced(static_cast<size_t>(H * n));  // [n_kv_heads, n_ctx] of one layer
  std::vector<int64_t> order(static_cast<size_t>(n)), flat(static_cast<size_t>(H * n));
  for (int il = 0; il < s.n_layers; ++il) {
    if (!prunable_layer(prunable, il)) continue;  // build() keeps such layers whole
    auto score = [&](int64_t f) { return key(s.at(il, static_cast<int>(f / n), f % n)); };
    // The safeguard: each head's top n_safe rows (kvpress scatters +max into them).
    std::fill(forced.begin(), forced.end(), 0);
    for (int ih = 0; ih < H; ++ih) {
      rank_rows(s, il, ih, order);
      for (int64_t i = 0; i < n_safe; ++i) forced[static_cast<size_t>(ih * n + order[i])] = 1;
    }
    // Layer-wide top H * n_kept over the flat index f = ih * n_ctx + j.
    std::iota(flat.begin(), flat.end(), 0);
    const auto better = [&](int64_t a, int64_t b) {
      if (forced[static_cast<size_t>(a)] != forced[static_cast<size_t>(b)])
        return forced[static_cast<size_t>(a)] > forced[static_cast<size_t>(b)];
      const float sa = score(a), sb = score(b);
      if (sa != sb) return sa > sb;
      return a % n != b % n ? a % n < b % n : a < b;
    };
    const int64_t n_layer = H * n_kept;
    std::nth_element(flat.begin(), flat.begin() + n_layer, flat.end(), better);
    for (int64_t i = 0; i < n_layer; ++i) {
      const int64_t f = flat[static_cast<size_t>(i)];
      keep[s.index(il, static_cast<int>(f / n), f % n)] = 1;
    }
  }
  return build(s.n_layers, H, n_prefix, n, n_rows, prunable,
               [&](int il, int ih, int64_t j) { return keep[s.index(il, ih, j)] != 0; });
}

KeepSet prune_threshold(const Scores& s, float threshold, int window, int64_t n_prefix,
                        int64_t n_rows, const std::vector<bool>& prunable) {
  check_shapes(s, n_prefix, n_rows, prunable);
  KVZ_CHECK(window >= 0, "window {}", window);
  const int64_t decided_end = n_rows - window;  // rows below this left the window
  return build(s.n_layers, s.n_kv_heads, n_prefix, s.n_ctx, n_rows, prunable,
               [&](int il, int ih, int64_t j) {
                 return n_prefix + j >= decided_end || s.at(il, ih, j) >= threshold;
               });
}

}  // namespace kvz
