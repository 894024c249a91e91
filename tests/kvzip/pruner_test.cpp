// Pruning rules against independently computed kept sets (tests/kvzip): global exact budget with
// position tie-break, the KVzip repo's strict threshold, uniform, head-level, kvpress and AdaKV
// variants.
#include "kvzip/pruner.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

Scores random_scores(int L, int H, int64_t n, uint64_t seed) {
  Scores s(L, H, n);
  Rng rng(seed);
  for (float& x : s.data) x = rng.uniform(0.0f, 1.0f);
  return s;
}

// (il, ih, j) of kept context pairs; checks prefix and tail rows are kept on every head.
using Pair = std::tuple<int, int, int64_t>;
std::vector<Pair> kept_pairs(const KeepSet& k, int64_t n_prefix, int64_t n_ctx, int64_t n_rows) {
  std::vector<Pair> out;
  for (size_t il = 0; il < k.rows.size(); ++il)
    for (size_t ih = 0; ih < k.rows[il].size(); ++ih) {
      const auto& r = k.rows[il][ih];
      EXPECT_TRUE(std::is_sorted(r.begin(), r.end()));
      for (int64_t row = 0; row < n_prefix; ++row)
        EXPECT_TRUE(std::binary_search(r.begin(), r.end(), row))
            << "prefix row " << row << " evicted";
      for (int64_t row = n_prefix + n_ctx; row < n_rows; ++row)
        EXPECT_TRUE(std::binary_search(r.begin(), r.end(), row))
            << "tail row " << row << " evicted";
      for (int32_t row : r)
        if (row >= n_prefix && row < n_prefix + n_ctx)
          out.emplace_back(static_cast<int>(il), static_cast<int>(ih), row - n_prefix);
    }
  std::sort(out.begin(), out.end());
  return out;
}

// Reference for BudgetRule::kExact: full sort by (score desc, position, layer, head).
std::vector<Pair> reference_exact(const Scores& s, double ratio,
                                  const std::vector<bool>& prunable) {
  std::vector<std::tuple<float, int64_t, int, int>> all;
  for (int il = 0; il < s.n_layers; ++il)
    if (prunable.empty() || prunable[il])
      for (int ih = 0; ih < s.n_kv_heads; ++ih)
        for (int64_t j = 0; j < s.n_ctx; ++j) all.emplace_back(-s.at(il, ih, j), j, il, ih);
  std::sort(all.begin(), all.end());
  const auto n_keep = static_cast<size_t>(std::llround(ratio * static_cast<double>(all.size())));
  std::vector<Pair> out;
  for (size_t i = 0; i < n_keep; ++i)
    out.emplace_back(std::get<2>(all[i]), std::get<3>(all[i]), std::get<1>(all[i]));
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Pruner, GlobalThresholdKeepsExactBudgetAcrossLayersAndHeads) {
  const int L = 3, H = 4;
  const int64_t n_ctx = 97, n_prefix = 5, n_rows = n_prefix + n_ctx + 6;
  Scores s = random_scores(L, H, n_ctx, 1);
  for (double ratio : {0.01, 0.1, 0.3, 0.5, 0.77, 0.999, 1.0}) {
    SCOPED_TRACE(ratio);
    KeepSet k = prune_pair(s, ratio, n_prefix, n_rows);
    auto got = kept_pairs(k, n_prefix, n_ctx, n_rows);
    const auto want_n = std::llround(ratio * L * H * n_ctx);
    EXPECT_EQ(static_cast<int64_t>(got.size()), want_n);
    EXPECT_EQ(k.n_kept, want_n);
    EXPECT_EQ(k.n_total, L * H * n_ctx);
    EXPECT_DOUBLE_EQ(k.kept_fraction, static_cast<double>(want_n) / (L * H * n_ctx));
    EXPECT_EQ(got, reference_exact(s, ratio, {}));
  }
  // Non-uniform head budgets: heads whose scores are shifted up keep more.
  for (int64_t j = 0; j < n_ctx; ++j) s.at(1, 2, j) += 0.5f;
  KeepSet k = prune_pair(s, 0.3, n_prefix, n_rows);
  EXPECT_GT(k.rows[1][2].size(), k.rows[0][0].size());
}

TEST(Pruner, TiesBreakByPositionThenLayerThenHead) {
  const int L = 2, H = 3;
  const int64_t n_ctx = 10, n_prefix = 2, n_rows = 12;
  Scores s(L, H, n_ctx);
  std::fill(s.data.begin(), s.data.end(), 0.25f);    // all tied (adversarial, as with bf16 scores)
  s.at(1, 2, 9) = 0.9f;                              // one clear winner
  KeepSet k = prune_pair(s, 0.2, n_prefix, n_rows);  // 12 of 60
  auto got = kept_pairs(k, n_prefix, n_ctx, n_rows);
  // Independent expectation: the winner, then ties at positions 0, 1 (6 each) minus one -> position
  // 0 for all 6 (layer, head) pairs and position 1 for the first 5 in (layer, head) order.
  std::vector<Pair> want{{1, 2, 9}};
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih) want.emplace_back(il, ih, 0);
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih)
      if (want.size() < 12) want.emplace_back(il, ih, 1);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  // Deterministic: the same input gives the same kept set.
  EXPECT_EQ(prune_pair(s, 0.2, n_prefix, n_rows).rows, k.rows);
}

// Scores with four distinct values (most pairs tied at the threshold, as a random-weight model's
// zeros are) and a layer that is not prunable, against the sorting reference.
TEST(Pruner, ExactBudgetWithManyTiesMatchesReference) {
  const int L = 3, H = 4;
  const int64_t n_ctx = 57, n_prefix = 3, n_rows = n_prefix + n_ctx + 2;
  const std::vector<bool> prunable{true, false, true};
  Scores s = random_scores(L, H, n_ctx, 5);
  for (float& x : s.data) x = std::floor(x * 4.0f) * 0.125f;
  for (double ratio : {0.1, 0.3, 0.5, 0.77}) {
    SCOPED_TRACE(ratio);
    std::vector<Pair> want = reference_exact(s, ratio, prunable);
    for (int ih = 0; ih < H; ++ih)  // the layer that is not prunable keeps every pair
      for (int64_t j = 0; j < n_ctx; ++j) want.emplace_back(1, ih, j);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(kept_pairs(prune_pair(s, ratio, n_prefix, n_rows, prunable), n_prefix, n_ctx, n_rows),
              want);
  }
}

TEST(Pruner, OriginalStrictThresholdEvictsTies) {
  const int L = 2, H = 2;
  const int64_t n_ctx = 50, n_prefix = 3, n_rows = 53;
  Scores s = random_scores(L, H, n_ctx, 7);
  // Distinct scores: keep > sorted_desc[int(200 * 0.3) - 1] -> exactly 59 pairs (one below budget).
  KeepSet k = prune_pair(s, 0.3, n_prefix, n_rows, {}, BudgetRule::kOriginalStrict);
  EXPECT_EQ(k.n_kept, 59);
  std::vector<float> sorted = s.data;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  for (auto [il, ih, j] : kept_pairs(k, n_prefix, n_ctx, n_rows))
    EXPECT_GT(s.at(il, ih, j), sorted[59]);
  // All tied: everything at the threshold goes.
  std::fill(s.data.begin(), s.data.end(), 0.5f);
  EXPECT_EQ(prune_pair(s, 0.3, n_prefix, n_rows, {}, BudgetRule::kOriginalStrict).n_kept, 0);
  // ... while the exact rule still keeps the budget.
  EXPECT_EQ(prune_pair(s, 0.3, n_prefix, n_rows).n_kept, 60);
}

TEST(Pruner, NonPrunableLayersKeepEverythingAndDoNotCount) {
  const int L = 3, H = 2;
  const int64_t n_ctx = 40, n_prefix = 4, n_rows = 44;
  Scores s = random_scores(L, H, n_ctx, 3);
  std::vector<bool> prunable{true, false, true};
  KeepSet k = prune_pair(s, 0.25, n_prefix, n_rows, prunable);
  EXPECT_EQ(k.n_total, 2 * H * n_ctx);
  EXPECT_EQ(k.n_kept, std::llround(0.25 * 2 * H * n_ctx));
  for (int ih = 0; ih < H; ++ih) EXPECT_EQ(k.rows[1][ih].size(), static_cast<size_t>(n_rows));
  auto got = kept_pairs(k, n_prefix, n_ctx, n_rows);
  got.erase(
      std::remove_if(got.begin(), got.end(), [](const Pair& p) { return std::get<0>(p) == 1; }),
      got.end());
  EXPECT_EQ(got, reference_exact(s, 0.25, prunable));
}

TEST(Pruner, RatioOutOfRangeIsInputError) {
  Scores s = random_scores(1, 1, 10, 1);
  HeadScores hs;
  hs.n_layers = 1, hs.n_kv_heads = 1, hs.data = {0.5f};
  for (double r : {0.0, -0.1, 1.0000001, 1.5, std::nan("")}) {
    SCOPED_TRACE(r);
    EXPECT_THROW(check_ratio(r), InputError);
    EXPECT_THROW(prune_pair(s, r, 0, 10), InputError);
    EXPECT_THROW(prune_pair_uniform(s, r, 0, 10), InputError);
    EXPECT_THROW(prune_head(hs, r, 0, 10, 10), InputError);
    EXPECT_THROW(prune_kvpress(s, r, 0, 10), InputError);
  }
  EXPECT_NO_THROW(check_ratio(1.0));
  EXPECT_EQ(prune_pair(s, 1.0, 0, 10).n_kept, 10);
}

TEST(Pruner, UniformKeepsTopPerHeadWithPositionTies) {
  const int L = 2, H = 3;
  const int64_t n_ctx = 30, n_prefix = 2, n_rows = 32;
  Scores s = random_scores(L, H, n_ctx, 11);
  for (int64_t j = 0; j < n_ctx; ++j) s.at(1, 1, j) = j < 20 ? 0.5f : 0.1f;  // ties in one head
  KeepSet k = prune_pair_uniform(s, 0.3, n_prefix, n_rows);  // int(30 * 0.3) = 9 per head
  auto got = kept_pairs(k, n_prefix, n_ctx, n_rows);
  std::vector<Pair> want;
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih) {
      std::vector<std::pair<float, int64_t>> v;
      for (int64_t j = 0; j < n_ctx; ++j) v.emplace_back(-s.at(il, ih, j), j);
      std::sort(v.begin(), v.end());
      for (int i = 0; i < 9; ++i) want.emplace_back(il, ih, v[i].second);
    }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  for (int64_t j = 0; j < 9; ++j) EXPECT_TRUE(std::count(got.begin(), got.end(), Pair{1, 1, j}));
}

TEST(Pruner, HeadLevelKeepsOrDropsWholeHeads) {
  HeadScores hs;
  hs.n_layers = 2, hs.n_kv_heads = 4;
  hs.data = {0.9f, 0.1f, 0.5f, 0.7f, 0.3f, 0.8f, 0.2f, 0.6f};
  const int64_t n_ctx = 20, n_prefix = 3, n_rows = 25;
  for (double ratio : {0.25, 0.5, 0.6, 1.0}) {
    SCOPED_TRACE(ratio);
    KeepSet k = prune_head(hs, ratio, n_prefix, n_rows, n_ctx);
    // Reference (KVzip repo, ALGORITHMS 2.6): thr = sorted_desc[int(160 * ratio) - 1] over pairs.
    std::vector<float> pairs;
    for (float x : hs.data) pairs.insert(pairs.end(), n_ctx, x);
    std::sort(pairs.begin(), pairs.end(), std::greater<float>());
    const float thr =
        pairs[static_cast<size_t>(std::max<int64_t>(static_cast<int64_t>(160 * ratio) - 1, 0))];
    for (int il = 0; il < 2; ++il)
      for (int ih = 0; ih < 4; ++ih) {
        const bool whole = ratio >= 1.0 || hs.at(il, ih) > thr;
        EXPECT_EQ(k.rows[il][ih].size(), static_cast<size_t>(whole ? n_rows : n_rows - n_ctx))
            << "layer " << il << " head " << ih;
      }
    kept_pairs(k, n_prefix, n_ctx, n_rows);  // prefix and tail rows of dropped heads stay
  }
  // 0.5 keeps the heads scoring 0.9, 0.8, 0.7 whole; 0.6 (the 4th) sits at the threshold and goes.
  EXPECT_EQ(prune_head(hs, 0.5, n_prefix, n_rows, n_ctx).n_kept, 3 * n_ctx);
}

TEST(Pruner, HeadScoresAreMaxOverPositionsAndRoundTrip) {
  Scores s = random_scores(2, 3, 17, 5);
  s.at(1, 2, 16) = 2.0f;
  HeadScores hs = HeadScores::from(s, "model-x");
  for (int il = 0; il < 2; ++il)
    for (int ih = 0; ih < 3; ++ih) {
      float mx = 0;
      for (int64_t j = 0; j < 17; ++j) mx = std::max(mx, s.at(il, ih, j));
      EXPECT_EQ(hs.at(il, ih), mx);
    }
  const std::string path = ::testing::TempDir() + "/kvz_head_scores.json";
  hs.save(path);
  HeadScores back = HeadScores::load(path);
  EXPECT_EQ(back.data, hs.data);
  EXPECT_EQ(back.model_identity, "model-x");
  EXPECT_EQ(back.n_layers, 2);
}

TEST(Pruner, KvpressSinksScoreOneAndOtherPrefixRowsGoFirst) {
  const int L = 2, H = 2;
  const int64_t n_prefix = 7, n_ctx = 25, N = n_prefix + n_ctx, n_rows = N + 3;
  Scores s = random_scores(L, H, n_ctx, 9);
  for (float& x : s.data) x = 0.01f + 0.5f * x;  // every context score above the prefix's 0
  // Remove int(128 * 0.25) = 32 lowest: the 3 unscored prefix rows (4..6) of 4 heads (12) first,
  // then the 20 lowest context scores.
  KeepSet k = prune_kvpress(s, 0.75, n_prefix, n_rows);
  int64_t removed = 0;
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih) {
      const auto& r = k.rows[il][ih];
      for (int32_t row = 0; row < 4; ++row)
        EXPECT_TRUE(std::binary_search(r.begin(), r.end(), row));
      for (int32_t row = 4; row < n_prefix; ++row)
        EXPECT_FALSE(std::binary_search(r.begin(), r.end(), row));
      for (int64_t row = N; row < n_rows; ++row)
        EXPECT_TRUE(std::binary_search(r.begin(), r.end(), (int32_t)row));
      removed += n_rows - static_cast<int64_t>(r.size());
    }
  EXPECT_EQ(removed, static_cast<int64_t>(L * H * N * 0.25));
  std::vector<float> ctx = s.data;
  std::sort(ctx.begin(), ctx.end());
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih)
      for (int64_t j = 0; j < n_ctx; ++j) {
        const bool kept = std::binary_search(k.rows[il][ih].begin(), k.rows[il][ih].end(),
                                             (int32_t)(n_prefix + j));
        EXPECT_EQ(kept, s.at(il, ih, j) > ctx[19]) << il << " " << ih << " " << j;
      }
  EXPECT_EQ(k.n_kept, L * H * n_ctx - 20);
  // With a 2-token prefix, rows 2 and 3 are context rows but still kvpress sinks (score 1).
  Scores z(1, 1, 10);  // all-zero context scores
  KeepSet kz = prune_kvpress(z, 0.5, 2, 12);
  EXPECT_EQ(kz.rows[0][0], (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
}

// AdaKV reference written the kvpress way (adakv_press.py), per prunable layer: copy the scores,
// scatter float max into each head's top int(n_kept * alpha) (ties: lower position first), then
// evict the H * (n_ctx - n_kept) lowest of the layer, ties evicting the later position, then the
// later head, first.
std::vector<Pair> reference_adakv(const Scores& s, double ratio, const std::vector<bool>& prunable,
                                  double alpha = 0.2) {
  const int H = s.n_kv_heads;
  const int64_t n = s.n_ctx;
  const auto n_kept = static_cast<int64_t>(static_cast<double>(n) * ratio);
  const auto n_safe = static_cast<int64_t>(static_cast<double>(n_kept) * alpha);
  std::vector<Pair> out;
  for (int il = 0; il < s.n_layers; ++il) {
    if (!prunable.empty() && !prunable[il]) continue;
    std::vector<std::vector<float>> sc(H);
    for (int ih = 0; ih < H; ++ih) {
      for (int64_t j = 0; j < n; ++j) sc[ih].push_back(s.at(il, ih, j));
      std::vector<std::pair<float, int64_t>> top;  // (-score, position): ascending = best first
      for (int64_t j = 0; j < n; ++j) top.emplace_back(-sc[ih][j], j);
      std::sort(top.begin(), top.end());
      for (int64_t i = 0; i < n_safe; ++i)
        sc[ih][top[i].second] = std::numeric_limits<float>::max();
    }
    std::vector<std::tuple<float, int64_t, int>> low;  // (score, -position, -head): evict first
    for (int ih = 0; ih < H; ++ih)
      for (int64_t j = 0; j < n; ++j) low.emplace_back(sc[ih][j], -j, -ih);
    std::sort(low.begin(), low.end());
    const int64_t n_pruned = H * (n - n_kept);
    for (size_t i = static_cast<size_t>(n_pruned); i < low.size(); ++i)
      out.emplace_back(il, -std::get<2>(low[i]), -std::get<1>(low[i]));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(AdaKv, MatchesBruteForceReference) {
  const int L = 3, H = 4;
  const int64_t n_prefix = 3, n_ctx = 37, n_rows = n_prefix + n_ctx + 2;  // 2 query rows
  for (uint64_t seed : {1u, 2u, 3u})
    for (bool quantized : {false, true})  // quantized: many ties within and across heads
      for (double ratio : {0.02, 0.1, 0.3, 0.5, 0.77, 0.99, 1.0}) {
        Scores s = random_scores(L, H, n_ctx, seed);
        if (quantized)
          for (float& x : s.data) x = std::round(x * 3.0f) / 3.0f;
        const KeepSet k = prune_adakv(s, ratio, n_prefix, n_rows);
        const auto got = kept_pairs(k, n_prefix, n_ctx, n_rows);
        EXPECT_EQ(got, reference_adakv(s, ratio, {}))
            << "seed " << seed << " quantized " << quantized << " ratio " << ratio;
        // Every layer keeps the uniform split's total; each head at least its safeguard.
        const auto n_kept = static_cast<int64_t>(static_cast<double>(n_ctx) * ratio);
        const auto n_safe = static_cast<int64_t>(static_cast<double>(n_kept) * 0.2);
        for (int il = 0; il < L; ++il) {
          int64_t layer = 0;
          for (int ih = 0; ih < H; ++ih) {
            const int64_t in_head = std::count_if(got.begin(), got.end(), [&](const Pair& p) {
              return std::get<0>(p) == il && std::get<1>(p) == ih;
            });
            EXPECT_GE(in_head, n_safe) << il << " " << ih << " ratio " << ratio;
            layer += in_head;
          }
          EXPECT_EQ(layer, H * n_kept) << il << " ratio " << ratio;
        }
        EXPECT_EQ(k.n_kept, L * H * n_kept);
        EXPECT_EQ(k.n_total, L * H * n_ctx);
      }
}

TEST(AdaKv, RatioOneKeepsEverything) {
  const Scores s = random_scores(2, 3, 25, 9);
  const KeepSet k = prune_adakv(s, 1.0, 2, 29);
  EXPECT_EQ(k.rows, prune_pair(s, 1.0, 2, 29).rows);
  EXPECT_EQ(k.n_kept, k.n_total);
  EXPECT_DOUBLE_EQ(k.kept_fraction, 1.0);
}

TEST(AdaKv, LowRatioStillKeepsEachHeadsSafeguard) {
  // Head 0 outscores every other head everywhere: without the safeguard it would take the whole
  // layer budget. n_kept = int(40 * 0.2) = 8, safeguard int(8 * 0.2) = 1, layer budget 4 * 8.
  const int L = 2, H = 4;
  const int64_t n_ctx = 40;
  Scores s = random_scores(L, H, n_ctx, 4);
  for (int il = 0; il < L; ++il)
    for (int64_t j = 0; j < n_ctx; ++j) s.at(il, 0, j) += 2.0f;
  const KeepSet k = prune_adakv(s, 0.2, 0, n_ctx);
  for (int il = 0; il < L; ++il) {
    EXPECT_EQ(k.rows[il][0].size(), 29u);  // its safeguard row + the 28 left after the others'
    for (int ih = 1; ih < H; ++ih) {
      ASSERT_EQ(k.rows[il][ih].size(), 1u) << il << " " << ih;
      int64_t best = 0;  // the head's own top row
      for (int64_t j = 1; j < n_ctx; ++j)
        if (s.at(il, ih, j) > s.at(il, ih, best)) best = j;
      EXPECT_EQ(k.rows[il][ih][0], best);
    }
  }
  // alpha = 1 is the uniform per-head rule.
  EXPECT_EQ(prune_adakv(s, 0.3, 0, n_ctx, {}, 1.0).rows, prune_pair_uniform(s, 0.3, 0, n_ctx).rows);
  // A budget below one pair per head keeps nothing of the context (kvpress: n_kept = 0).
  EXPECT_EQ(prune_adakv(s, 0.01, 0, n_ctx).n_kept, 0);
}

TEST(AdaKv, NonPrunableLayersKeepEverything) {
  const int L = 3, H = 2;
  const int64_t n_prefix = 1, n_ctx = 20, n_rows = 21;
  const Scores s = random_scores(L, H, n_ctx, 6);
  const std::vector<bool> prunable{true, false, true};
  const KeepSet k = prune_adakv(s, 0.4, n_prefix, n_rows, prunable);
  for (int ih = 0; ih < H; ++ih) EXPECT_EQ(k.rows[1][ih].size(), static_cast<size_t>(n_rows));
  auto got = kept_pairs(k, n_prefix, n_ctx, n_rows);
  got.erase(
      std::remove_if(got.begin(), got.end(), [](const Pair& p) { return std::get<0>(p) == 1; }),
      got.end());
  EXPECT_EQ(got, reference_adakv(s, 0.4, prunable));
  EXPECT_EQ(k.n_total, 2 * H * n_ctx);
}

}  // namespace
}  // namespace kvz::test
