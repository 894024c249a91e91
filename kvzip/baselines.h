// Baseline KV-eviction scorers beside KVzip (kvzip/): each turns what it observes into a Scores
// object over the context rows, so the same pruning rules (pruner.h) and the same ragged cache
// serve every method. ALGORITHMS.md section 4. Everything here runs on the host over downloaded
// tensors: fine for the small models the evaluation uses, not meant for long contexts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvzip/kv_cache.h"
#include "kvzip/scores.h"

namespace kvz {

// How a method's scores become a kept set: one global threshold over every layer and head
// (KVzip's non-uniform budgets, prune_pair), the same count in every head (prune_pair_uniform),
// PyramidKV's linearly decreasing layer budgets, the same count in every head of a layer
// (pyramid_budgets + prune_layer_budgets), whole heads by context-independent head scores
// (prune_head, ALGORITHMS.md 2.6), or AdaKV's per-layer budget shared by its heads with a
// per-head safeguard (prune_adakv, ALGORITHMS.md 4).
enum class Budget { kGlobal, kPerHead, kPyramid, kHead, kAdaKv };

// What a query-aware scorer sees of one layer while the observation window (the first query's
// tokens, appended after the context) runs through the model.
struct ObservedLayer {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  std::vector<float> q;        // [n_obs, n_heads, head_dim] f32, post-RoPE
  std::vector<int32_t> q_pos;  // [n_obs] positions of the window tokens
  std::vector<HeadRows> kv;    // [n_kv_heads] the layer's rows, context and window included
  int64_t n_obs() const { return static_cast<int64_t>(q_pos.size()); }
};

// Attention probabilities of the window queries over the context rows of one layer:
// p[ih_q][i][j] for query head ih_q, window token i, context row j in [n_prefix, n_prefix+n_ctx).
// The softmax runs in f32 over every row the query may see (prefix, context and the causal part
// of the window), scaled by `scale`, as attention computed it.
struct WindowAttention {
  int n_heads = 0;
  int64_t n_obs = 0, n_ctx = 0;
  std::vector<float> p;  // [n_heads, n_obs, n_ctx]
  float at(int ih, int64_t i, int64_t j) const {
    return p[(static_cast<size_t>(ih) * static_cast<size_t>(n_obs) + static_cast<size_t>(i)) *
                 static_cast<size_t>(n_ctx) +
             static_cast<size_t>(j)];
  }
};
WindowAttention window_attention(const ObservedLayer& layer, int64_t n_prefix, int64_t n_ctx,
                                 float scale);

// Random (kvpress random_press): uniform scores in [0, 1), reproducible from `seed`.
Scores random_scores(int n_layers, int n_kv_heads, int64_t n_ctx, uint64_t seed);

// StreamingLLM (kvpress streaming_llm_press) as scores: the system prefix is always kept by the
// pruner (it plays the attention sinks); inside the context the first `n_sink` rows score 2 and
// the rest their recency (j + 1) / n_ctx, so a per-head budget keeps the sinks and the most
// recent rows. With a non-empty prefix kvpress' 4 sinks are already resident: pass n_sink 0.
Scores streaming_scores(int n_layers, int n_kv_heads, int64_t n_ctx, int n_sink = 0);

// Knorm (kvpress knorm_press): score = -||k||_2 of each context key (RoPE keeps norms), read from
// `cache`, which must hold at least n_prefix + n_ctx rows per head in position order.
Scores knorm_scores(const KvCache& cache, int64_t n_prefix, int64_t n_ctx);

// SnapKV (KVzip paper setting, ALGORITHMS.md 4): the window queries' attention to each context
// key, averaged over the window, 1-D max-pooled with `kernel` (odd, centred, edge rows see a
// shorter window), then averaged over the G query heads of each KV head. One ObservedLayer per
// layer, in layer order.
Scores snapkv_scores(const std::vector<ObservedLayer>& layers, int64_t n_prefix, int64_t n_ctx,
                     float scale, int kernel = 7);

// TOVA (kvpress tova_press): the attention of the last window token to each context key,
// averaged over all query heads of the layer, the same score for every KV head of that layer.
Scores tova_scores(const std::vector<ObservedLayer>& layers, int64_t n_prefix, int64_t n_ctx,
                   float scale);

// H2O, window variant: the maximum attention a context key receives from any window query
// (the KVzip paper's max-over-queries choice, App. A), max over the G query heads. The paper's
// H2O observes the prefill queries; this one observes the first query only.
Scores h2o_window_scores(const std::vector<ObservedLayer>& layers, int64_t n_prefix, int64_t n_ctx,
                         float scale);

// The evaluation's method names: kvzip, kvzip_head, snapkv, pyramidkv, tova, h2o, streaming,
// knorm, random, expected_attention, adakv_snapkv, adakv_expected_attention,
// expected_attention_e2. pyramidkv = snapkv's scores under pyramid budgets; kvzip_head = KVzip's
// head-level variant (per-model head scores, no per-sample scoring); expected_attention is in
// kvzip/expected_attention.h; adakv_X = X's scores under AdaKV budgets (kvpress AdaKVPress(X)),
// adakv_expected_attention with epsilon 1e-2 as the kvpress leaderboard entry (kvpress'
// adakv_expected_attention_e2; plain expected_attention: 0); expected_attention_e2 = epsilon 1e-2
// under the per-head budget, to separate the two changes.
struct MethodInfo {
  std::string name;
  Budget budget = Budget::kGlobal;
  bool query_aware = false;        // needs the observation window
  bool needs_kvzip = false;        // needs the reconstruction scoring pass
  bool needs_query_stats = false;  // needs the prefill queries' statistics (QueryStats)
  std::string scorer = {};         // the method whose scores it uses; empty: its own name
  float epsilon = 0.0f;            // Expected Attention's (score + epsilon) * ||v||
};
// Throws InputError on an unknown name (the message lists the known ones).
MethodInfo method_info(std::string_view name);
std::vector<std::string> known_methods();

}  // namespace kvz
