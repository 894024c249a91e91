// Pruning rules (kvzip/). See pruner.h; the KVzip paper's Eq. 2 scores feed a global threshold.
#include "kvzip/pruner.h"

#include <algorithm>
#include <numeric>

namespace kvz {
namespace {

bool prunable_layer(const std::vector<bool>& p, int il) { return p.empty() || p[il]; }

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
  k.kept_fraction = k.n_total ? static_cast<double>(k.n_kept) / static_cast<double>(k.n_total) : 1.0;
  return k;
}

}  // namespace

void check_ratio(double ratio) {
  if (!(ratio > 0.0 && ratio <= 1.0))
    throw InputError(fmt::format("ratio {} is out of range (0, 1]: it is the fraction of context KV "
                                 "pairs kept (kvpress' compression_ratio is 1 - ratio)",
                                 ratio));
}

KeepSet prune_pair(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                   const std::vector<bool>& prunable) {
  check_ratio(ratio);
  KVZ_CHECK(n_rows >= n_prefix + s.n_ctx, "cache has {} rows, scores cover {} + {}", n_rows, n_prefix, s.n_ctx);
  std::vector<float> all;
  for (int il = 0; il < s.n_layers; ++il)
    if (prunable_layer(prunable, il))
      all.insert(all.end(), s.data.begin() + static_cast<int64_t>(s.index(il, 0, 0)),
                 s.data.begin() + static_cast<int64_t>(s.index(il, 0, 0)) + s.n_kv_heads * s.n_ctx);
  if (ratio >= 1.0 || all.empty())
    return build(s.n_layers, s.n_kv_heads, n_prefix, s.n_ctx, n_rows, prunable,
                 [](int, int, int64_t) { return true; });
  auto n = static_cast<size_t>(std::max<int64_t>(static_cast<int64_t>(static_cast<double>(all.size()) * ratio) - 1, 0));
  std::nth_element(all.begin(), all.begin() + static_cast<int64_t>(n), all.end(), std::greater<float>());
  const float thr = all[n];
  return build(s.n_layers, s.n_kv_heads, n_prefix, s.n_ctx, n_rows, prunable,
               [&](int il, int ih, int64_t j) { return s.at(il, ih, j) > thr; });
}

KeepSet prune_pair_uniform(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows,
                           const std::vector<bool>& prunable) {
  check_ratio(ratio);
  const auto budget = static_cast<int64_t>(static_cast<double>(s.n_ctx) * ratio);
  std::vector<uint8_t> keep(s.data.size(), 0);
  std::vector<int64_t> order(static_cast<size_t>(s.n_ctx));
  for (int il = 0; il < s.n_layers; ++il)
    for (int ih = 0; ih < s.n_kv_heads; ++ih) {
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return s.at(il, ih, a) > s.at(il, ih, b); });
      for (int64_t i = 0; i < budget; ++i) keep[s.index(il, ih, order[i])] = 1;
    }
  return build(s.n_layers, s.n_kv_heads, n_prefix, s.n_ctx, n_rows, prunable,
               [&](int il, int ih, int64_t j) { return ratio >= 1.0 || keep[s.index(il, ih, j)]; });
}

KeepSet prune_head(const HeadScores& hs, double ratio, int64_t n_prefix, int64_t n_rows, int64_t n_ctx,
                   const std::vector<bool>& prunable) {
  Scores s(hs.n_layers, hs.n_kv_heads, n_ctx);
  for (int il = 0; il < hs.n_layers; ++il)
    for (int ih = 0; ih < hs.n_kv_heads; ++ih)
      std::fill_n(s.data.begin() + static_cast<int64_t>(s.index(il, ih, 0)), n_ctx, hs.at(il, ih));
  return prune_pair(s, ratio, n_prefix, n_rows, prunable);
}

KeepSet prune_kvpress(const Scores& s, double ratio, int64_t n_prefix, int64_t n_rows) {
  check_ratio(ratio);
  const int64_t N = n_prefix + s.n_ctx, L = s.n_layers, H = s.n_kv_heads;
  auto full_score = [&](int64_t il, int64_t ih, int64_t row) -> float {
    if (row < n_prefix) return row < 4 ? 1.0f : 0.0f;
    return s.at(static_cast<int>(il), static_cast<int>(ih), row - n_prefix);
  };
  const int64_t numel = L * H * N;
  const auto n_pruned = static_cast<int64_t>(static_cast<double>(numel) * (1.0 - ratio));
  std::vector<int64_t> idx(static_cast<size_t>(numel));
  std::iota(idx.begin(), idx.end(), 0);
  auto score_of = [&](int64_t i) { return full_score(i / (H * N), (i / N) % H, i % N); };
  std::nth_element(idx.begin(), idx.begin() + n_pruned, idx.end(), [&](int64_t a, int64_t b) {
    float sa = score_of(a), sb = score_of(b);
    return sa != sb ? sa < sb : a > b;
  });
  std::vector<uint8_t> removed(static_cast<size_t>(numel), 0);
  for (int64_t i = 0; i < n_pruned; ++i) removed[static_cast<size_t>(idx[i])] = 1;
  KeepSet k;
  k.rows.assign(static_cast<size_t>(L), std::vector<std::vector<int32_t>>(static_cast<size_t>(H)));
  for (int64_t il = 0; il < L; ++il)
    for (int64_t ih = 0; ih < H; ++ih)
      for (int64_t row = 0; row < n_rows; ++row) {
        bool keep = row >= N || !removed[static_cast<size_t>((il * H + ih) * N + row)];
        if (keep) k.rows[il][ih].push_back(static_cast<int32_t>(row));
        if (row >= n_prefix && row < N) {
          k.n_total++;
          k.n_kept += keep;
        }
      }
  k.kept_fraction = k.n_total ? static_cast<double>(k.n_kept) / static_cast<double>(k.n_total) : 1.0;
  return k;
}

}  // namespace kvz
