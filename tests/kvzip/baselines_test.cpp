// Baseline scorers on hand-built inputs (tests/kvzip): what each rule must prefer, that the window
// softmax is causal and normalised, that the scores drive the pruner as the method specifies, and
// PyramidKV's layer budgets against kvpress' formula worked out by hand.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kvzip/baselines.h"
#include "kvzip/pruner.h"
#include "runtime/cpu/half.h"
#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

constexpr int kHeadDim = 4;

// One layer: n_kv_heads heads of `rows` keys (key r of head h = `key(h, r)`), positions 0..rows-1,
// and a window of the last n_obs rows whose queries are `query(i, ih)`.
template <class KeyFn, class QueryFn>
ObservedLayer make_layer(int n_heads, int n_kv_heads, int rows, int n_obs, KeyFn key,
                         QueryFn query) {
  ObservedLayer l;
  l.n_heads = n_heads;
  l.n_kv_heads = n_kv_heads;
  l.head_dim = kHeadDim;
  l.kv.resize(static_cast<size_t>(n_kv_heads));
  for (int h = 0; h < n_kv_heads; ++h)
    for (int r = 0; r < rows; ++r) {
      l.kv[h].pos.push_back(r);
      std::array<float, kHeadDim> k = key(h, r);
      for (float x : k) {
        l.kv[h].k.push_back(cpu::f32_to_f16(x));
        l.kv[h].v.push_back(0);
      }
    }
  for (int i = 0; i < n_obs; ++i) {
    l.q_pos.push_back(rows - n_obs + i);
    for (int ih = 0; ih < n_heads; ++ih) {
      std::array<float, kHeadDim> q = query(i, ih);
      l.q.insert(l.q.end(), q.begin(), q.end());
    }
  }
  return l;
}

std::array<float, kHeadDim> zero_key(int, int) { return {0, 0, 0, 0}; }

TEST(Baselines, WindowAttentionIsCausalAndNormalised) {
  // 2 prefix + 6 context + 3 window rows; all-zero keys give uniform attention over visible rows.
  ObservedLayer l = make_layer(2, 1, 11, 3, zero_key, [](int, int) {
    return std::array<float, kHeadDim>{1, 0, 0, 0};
  });
  WindowAttention w = window_attention(l, 2, 6, 0.5f);
  for (int ih = 0; ih < 2; ++ih)
    for (int i = 0; i < 3; ++i) {
      const float visible =
          static_cast<float>(8 + 1 + i);  // prefix + context + window rows <= own pos
      for (int j = 0; j < 6; ++j)
        EXPECT_NEAR(w.at(ih, i, j), 1.0f / visible, 1e-6f) << ih << " " << i << " " << j;
    }
}

TEST(Baselines, SnapKvPrefersTheAttendedKeyAndItsPoolingNeighbours) {
  // Context rows 0..19 (no prefix); key 10 aligns with every query; window = rows 20..23.
  auto key = [](int, int r) {
    return r == 10 ? std::array<float, kHeadDim>{8, 0, 0, 0}
                   : std::array<float, kHeadDim>{0, 1, 0, 0};
  };
  auto query = [](int, int) { return std::array<float, kHeadDim>{1, 0, 0, 0}; };
  std::vector<ObservedLayer> layers{make_layer(4, 2, 24, 4, key, query)};
  Scores s = snapkv_scores(layers, 0, 20, 1.0f, 7);
  for (int h = 0; h < 2; ++h) {
    for (int j = 7; j <= 13; ++j)
      EXPECT_FLOAT_EQ(s.at(0, h, j), s.at(0, h, 10)) << j;  // max-pool 7
    EXPECT_GT(s.at(0, h, 10), 10 * s.at(0, h, 0));
    EXPECT_FLOAT_EQ(s.at(0, h, 0), s.at(0, h, 19));
  }
  KeepSet k = prune_pair_uniform(s, 0.35, 0, 24);  // 7 per head: exactly the pooled neighbourhood
  for (int h = 0; h < 2; ++h)
    EXPECT_EQ(k.rows[0][h], (std::vector<int32_t>{7, 8, 9, 10, 11, 12, 13, 20, 21, 22, 23}));
}

TEST(Baselines, TovaUsesTheLastTokenAndSharesScoresAcrossHeads) {
  // Query head 0 of the last token looks at key 3 of KV head 0; all other queries are flat.
  auto key = [](int h, int r) {
    return h == 0 && r == 3 ? std::array<float, kHeadDim>{9, 0, 0, 0}
                            : std::array<float, kHeadDim>{0, 0, 0, 0};
  };
  auto query = [](int i, int ih) {
    return i == 1 && ih == 0 ? std::array<float, kHeadDim>{1, 0, 0, 0}
                             : std::array<float, kHeadDim>{0, 0, 0, 0};
  };
  std::vector<ObservedLayer> layers{make_layer(2, 2, 10, 2, key, query)};
  Scores s = tova_scores(layers, 0, 8, 1.0f);
  for (int j = 0; j < 8; ++j) EXPECT_FLOAT_EQ(s.at(0, 0, j), s.at(0, 1, j));
  for (int j = 0; j < 8; ++j) {
    if (j != 3) {
      EXPECT_GT(s.at(0, 0, 3), s.at(0, 0, j));
    }
  }
  // H2O (window) keeps the per-KV-head maximum instead: head 1 stays flat.
  Scores h = h2o_window_scores(layers, 0, 8, 1.0f);
  EXPECT_FLOAT_EQ(h.at(0, 1, 0), h.at(0, 1, 3));
  EXPECT_GT(h.at(0, 0, 3), h.at(0, 0, 0));
}

TEST(Baselines, StreamingKeepsTheMostRecentRowsAndTheSinks) {
  Scores s = streaming_scores(2, 3, 100, 4);
  KeepSet k = prune_pair_uniform(s, 0.1, 5, 105);
  std::vector<int32_t> want{0, 1, 2, 3, 4, 5, 6, 7, 8, 99, 100, 101, 102, 103, 104};
  for (int il = 0; il < 2; ++il)
    for (int ih = 0; ih < 3; ++ih) EXPECT_EQ(k.rows[il][ih], want);
}

TEST(Baselines, RandomIsReproducibleAndSeeded) {
  Scores a = random_scores(2, 2, 50, 7), b = random_scores(2, 2, 50, 7),
         c = random_scores(2, 2, 50, 8);
  EXPECT_EQ(a.data, b.data);
  EXPECT_NE(a.data, c.data);
  for (float v : a.data) EXPECT_TRUE(v >= 0.0f && v < 1.0f);
}

TEST(Baselines, KnormPrefersSmallKeys) {
  Device& dev = cpu_device();
  KvCacheConfig cfg;
  cfg.n_layers = 1;
  cfg.n_kv_heads = 2;
  cfg.head_dim = kHeadDim;
  std::vector<std::vector<HeadRows>> rows(1, std::vector<HeadRows>(2));
  for (int h = 0; h < 2; ++h)
    for (int r = 0; r < 40; ++r) {  // 2 prefix rows, 38 context rows; norm grows with (r * 7) % 40
      rows[0][h].pos.push_back(r);
      const float x = static_cast<float>((r * 7 + h) % 40) / 8.0f;
      for (int d = 0; d < kHeadDim; ++d) {
        rows[0][h].k.push_back(cpu::f32_to_f16(d == 0 ? x : 0.0f));
        rows[0][h].v.push_back(0);
      }
    }
  auto cache = KvCache::from_rows(dev, cfg, rows);
  Scores s = knorm_scores(*cache, 2, 38);
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 38; ++j)
      EXPECT_FLOAT_EQ(s.at(0, h, j), -static_cast<float>(((j + 2) * 7 + h) % 40) / 8.0f)
          << h << " " << j;
}

TEST(Baselines, MethodTable) {
  EXPECT_EQ(method_info("kvzip").budget, Budget::kGlobal);
  EXPECT_EQ(method_info("kvzip_head").budget, Budget::kHead);
  EXPECT_FALSE(method_info("kvzip_head").needs_kvzip);
  EXPECT_TRUE(method_info("snapkv").query_aware);
  EXPECT_EQ(method_info("snapkv").budget, Budget::kPerHead);
  EXPECT_FALSE(method_info("knorm").query_aware);
  EXPECT_THROW(method_info("pyramid"), InputError);
  for (const std::string& m : known_methods()) EXPECT_EQ(method_info(m).name, m);
  // AdaKV wrappers: the wrapped scorer's observations, AdaKV budgets; Expected Attention with the
  // kvpress leaderboard's epsilon (its plain entry keeps kvpress' default 0).
  const MethodInfo a = method_info("adakv_snapkv");
  EXPECT_EQ(a.budget, Budget::kAdaKv);
  EXPECT_TRUE(a.query_aware);
  EXPECT_EQ(a.scorer, "snapkv");
  const MethodInfo e = method_info("adakv_expected_attention");
  EXPECT_EQ(e.budget, Budget::kAdaKv);
  EXPECT_TRUE(e.needs_query_stats);
  EXPECT_FALSE(e.query_aware);
  EXPECT_EQ(e.scorer, "expected_attention");
  EXPECT_FLOAT_EQ(e.epsilon, 1e-2f);
  EXPECT_EQ(method_info("expected_attention").epsilon, 0.0f);
  const MethodInfo e2 = method_info("expected_attention_e2");
  EXPECT_EQ(e2.budget, Budget::kPerHead);
  EXPECT_EQ(e2.scorer, "expected_attention");
  EXPECT_FLOAT_EQ(e2.epsilon, 1e-2f);
  EXPECT_TRUE(method_info("snapkv").scorer.empty());
}

// PyramidKV budgets: kvpress' get_layer_budget written out by hand for these cases (Python
// round() = half to even).
TEST(PyramidKv, BudgetsFollowKvpress) {
  // K = 30: min 1.5, max 58.5, step 14.25 -> 58.5, 44.25, 30, 15.75, 1.5.
  EXPECT_EQ(pyramid_budgets(5, 100, 0.3), (std::vector<int64_t>{58, 44, 30, 16, 2}));
  // K = 80: max 156 capped at 100, min = 160 - 100 = 60.
  EXPECT_EQ(pyramid_budgets(5, 100, 0.8), (std::vector<int64_t>{100, 90, 80, 70, 60}));
  // min 1.5 < window 10: uniform fallback round(30).
  EXPECT_EQ(pyramid_budgets(5, 100, 0.3, 10), (std::vector<int64_t>(5, 30)));
  EXPECT_EQ(pyramid_budgets(4, 37, 1.0), (std::vector<int64_t>(4, 37)));
  EXPECT_EQ(pyramid_budgets(1, 50, 0.5), (std::vector<int64_t>{25}));
  // The mean stays the uniform budget (up to rounding) over many shapes.
  for (int L : {2, 7, 30})
    for (int64_t n : {16, 200, 3001})
      for (double r : {0.1, 0.25, 0.5, 0.7}) {
        const std::vector<int64_t> b = pyramid_budgets(L, n, r);
        const double mean = std::accumulate(b.begin(), b.end(), 0.0) / L;
        EXPECT_NEAR(mean, n * r, 0.5 + 1e-9) << L << " " << n << " " << r;
        EXPECT_TRUE(std::is_sorted(b.rbegin(), b.rend())) << L << " " << n << " " << r;
      }
}

TEST(PyramidKv, LayerBudgetsKeepEachHeadsTopScores) {
  Rng rng(5);
  const int L = 3, H = 2;
  const int64_t n_prefix = 2, n_ctx = 20, n_rows = 25;
  Scores s(L, H, n_ctx);
  for (float& x : s.data) x = rng.uniform();
  const std::vector<int64_t> budgets{15, 7, 0};
  const KeepSet k = prune_layer_budgets(s, budgets, n_prefix, n_rows);
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih) {
      // Brute force: the context rows whose score has fewer than `budget` larger ones.
      std::vector<int32_t> want{0, 1};
      for (int64_t j = 0; j < n_ctx; ++j) {
        int64_t larger = 0;
        for (int64_t t = 0; t < n_ctx; ++t) larger += s.at(il, ih, t) > s.at(il, ih, j);
        if (larger < budgets[static_cast<size_t>(il)])
          want.push_back(static_cast<int32_t>(n_prefix + j));
      }
      for (int32_t r = static_cast<int32_t>(n_prefix + n_ctx); r < n_rows; ++r) want.push_back(r);
      EXPECT_EQ(k.rows[il][ih], want) << il << " " << ih;
    }
  EXPECT_EQ(k.n_kept, (15 + 7 + 0) * H);
  // Equal budgets are the uniform rule.
  const KeepSet u = prune_pair_uniform(s, 0.35, n_prefix, n_rows);
  const KeepSet e = prune_layer_budgets(s, std::vector<int64_t>(L, 7), n_prefix, n_rows);
  EXPECT_EQ(u.rows, e.rows);
}

TEST(PyramidKv, MethodUsesSnapKvScoresAndPyramidBudgets) {
  const MethodInfo m = method_info("pyramidkv");
  EXPECT_EQ(m.budget, Budget::kPyramid);
  EXPECT_TRUE(m.query_aware);
  const MethodInfo e = method_info("expected_attention");
  EXPECT_TRUE(e.needs_query_stats);
  EXPECT_FALSE(e.query_aware);
  EXPECT_EQ(e.budget, Budget::kPerHead);
}

}  // namespace
}  // namespace kvz::test
