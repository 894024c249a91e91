// Pair scores of every pruning method for a prefilled session (tools/). See eval_methods.h.
#include "tools/eval_methods.h"

namespace kvz::cli {

std::vector<ObservedLayer> observe_first_query(Session& s, const std::vector<int32_t>& window) {
  const ModelConfig& c = s.model().config();
  Device& dev = s.model().device();
  const auto n_obs = static_cast<int64_t>(window.size());
  std::vector<ObservedLayer> obs(static_cast<size_t>(c.n_layers));
  LayerHook hook = [&](Recorder& rec, int il, const Tensor& q, const KvCache::LayerView&) {
    rec.finish();  // q and this layer's new rows must be computed before they are read back
    ObservedLayer& o = obs[static_cast<size_t>(il)];
    o.n_heads = c.n_heads;
    o.n_kv_heads = c.n_kv_heads;
    o.head_dim = c.head_dim;
    o.q.resize(static_cast<size_t>(q.numel()));
    dev.download(q, o.q.data());
    o.kv = s.cache().read_layer(il);
    const std::vector<int32_t>& pos = o.kv[0].pos;
    o.q_pos.assign(pos.end() - n_obs, pos.end());
  };
  s.observe_tokens(window, hook);
  return obs;
}

std::vector<RopeSpec> rope_specs(const Model& model) {
  const ModelConfig& c = model.config();
  auto table = [&](const Tensor& t) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    model.device().download(t, v.data());
    return v;
  };
  const std::vector<float> global = table(model.weights().rope_inv_freq),
                           local = table(model.weights().rope_inv_freq_local);
  std::vector<RopeSpec> out(static_cast<size_t>(c.n_layers));
  for (int il = 0; il < c.n_layers; ++il)
    out[static_cast<size_t>(il)] = {c.rope_style, c.sliding(il) ? local : global,
                                    c.sliding(il) ? 1.0f : rope_attn_factor(c.rope_scaling)};
  return out;
}

void prefill(Session& s, const std::string& context, QueryStats* stats) {
  if (!stats) return s.prefill(context);
  Device& dev = s.model().device();
  std::vector<int32_t> next(static_cast<size_t>(s.model().config().n_layers), 0);
  std::vector<float> q;
  LayerHook hook = [&](Recorder& rec, int il, const Tensor& qt, const KvCache::LayerView&) {
    rec.finish();
    q.resize(static_cast<size_t>(qt.numel()));
    dev.download(qt, q.data());
    stats->add(il, q, next[static_cast<size_t>(il)]);
    next[static_cast<size_t>(il)] += static_cast<int32_t>(qt.dim(0));
  };
  s.prefill(context, {}, &hook);
}

Scores method_scores(Session& s, const MethodInfo& m, const Scores& kvzip,
                     const std::vector<ObservedLayer>& obs, const QueryStats* stats,
                     uint64_t seed) {
  const ModelConfig& c = s.model().config();
  const int64_t n_prefix = s.n_prefix(), n_ctx = s.n_context();
  if (!m.scorer.empty()) {  // adakv_X: X's scores, with the wrapper's epsilon
    MethodInfo base = method_info(m.scorer);
    base.epsilon = m.epsilon;
    return method_scores(s, base, kvzip, obs, stats, seed);
  }
  if (m.name == "kvzip") return kvzip;
  if (m.name == "snapkv" || m.name == "pyramidkv")  // pyramidkv differs by its budgets
    return snapkv_scores(obs, n_prefix, n_ctx, c.attn_scale);
  if (m.name == "expected_attention") {
    ExpectedAttentionOptions o;
    o.epsilon = m.epsilon;
    return expected_attention_scores(*stats, s.cache(), n_prefix, n_ctx, o);
  }
  if (m.name == "tova") return tova_scores(obs, n_prefix, n_ctx, c.attn_scale);
  if (m.name == "h2o") return h2o_window_scores(obs, n_prefix, n_ctx, c.attn_scale);
  // The system prefix is resident and serves as the attention sinks (ALGORITHMS.md 1.5).
  if (m.name == "streaming")
    return streaming_scores(c.n_layers, c.n_kv_heads, n_ctx, n_prefix > 0 ? 0 : 4);
  if (m.name == "knorm") return knorm_scores(s.cache(), n_prefix, n_ctx);
  return random_scores(c.n_layers, c.n_kv_heads, n_ctx, seed);
}

PruneLevel prune_level(Budget b) {
  switch (b) {
    case Budget::kGlobal:
      return PruneLevel::kPair;
    case Budget::kPyramid:
      return PruneLevel::kPyramid;
    case Budget::kHead:
      return PruneLevel::kHead;
    case Budget::kAdaKv:
      return PruneLevel::kAdaKv;
    case Budget::kPerHead:
      break;
  }
  return PruneLevel::kPairUniform;
}

}  // namespace kvz::cli
