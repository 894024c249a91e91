// Baseline scorers (kvzip/). See baselines.h; ALGORITHMS.md section 4 for each rule's source.
#include "kvzip/baselines.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvzip/splitmix.h"
#include "runtime/cpu/half.h"
#include "runtime/cpu/parallel.h"
#include "runtime/error.h"

namespace kvz {
namespace {

std::vector<float> to_f32(const std::vector<uint16_t>& h) {
  std::vector<float> f(h.size());
  for (size_t i = 0; i < h.size(); ++i) f[i] = cpu::f16_to_f32(h[i]);
  return f;
}

// Everything window_attention() checks, before the layers run on worker threads (where a throw
// could not reach the caller).
void check_layers(const std::vector<ObservedLayer>& layers, int64_t n_prefix, int64_t n_ctx) {
  KVZ_CHECK(!layers.empty(), "no observed layers");
  for (const ObservedLayer& l : layers) {
    KVZ_CHECK(l.n_heads > 0 && l.n_kv_heads > 0 && l.n_heads % l.n_kv_heads == 0, "heads {}/{}",
              l.n_heads, l.n_kv_heads);
    KVZ_CHECK(l.n_obs() > 0, "empty observation window");
    KVZ_CHECK(l.q.size() == static_cast<size_t>(l.n_obs() * l.n_heads * l.head_dim),
              "q of {} floats", l.q.size());
    KVZ_CHECK(static_cast<int>(l.kv.size()) == l.n_kv_heads, "{} kv heads observed", l.kv.size());
    for (const HeadRows& rows : l.kv)
      KVZ_CHECK(static_cast<int64_t>(rows.pos.size()) >= n_prefix + n_ctx,
                "a layer head holds {} rows, need {} + {}", rows.pos.size(), n_prefix, n_ctx);
  }
}

// fn(il) for every layer on the CPU backend's threads: each call writes only its layer's scores.
template <class Fn>
void for_each_layer(int n_layers, Fn&& fn) {
  cpu::parallel_for(n_layers, 0, [&](int, int64_t il) { fn(static_cast<int>(il)); });
}

}  // namespace

WindowAttention window_attention(const ObservedLayer& l, int64_t n_prefix, int64_t n_ctx,
                                 float scale) {
  const int G = l.n_heads / l.n_kv_heads;
  const int64_t hd = l.head_dim, n_obs = l.n_obs();
  WindowAttention w;
  w.n_heads = l.n_heads;
  w.n_obs = n_obs;
  w.n_ctx = n_ctx;
  w.p.assign(static_cast<size_t>(l.n_heads * n_obs * n_ctx), 0.0f);
  std::vector<float> logits;
  for (int kh = 0; kh < l.n_kv_heads; ++kh) {
    const HeadRows& rows = l.kv[kh];
    const auto n_rows = static_cast<int64_t>(rows.pos.size());
    KVZ_CHECK(n_rows >= n_prefix + n_ctx, "layer head {} holds {} rows, need {} + {}", kh, n_rows,
              n_prefix, n_ctx);
    const std::vector<float> k = to_f32(rows.k);  // [n_rows, head_dim]
    logits.resize(static_cast<size_t>(n_rows));
    for (int g = 0; g < G; ++g) {
      const int ih = kh * G + g;
      for (int64_t i = 0; i < n_obs; ++i) {
        const float* q = l.q.data() + (i * l.n_heads + ih) * hd;
        // Causal: the query sees every row at or before its own position.
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t r = 0; r < n_rows; ++r) {
          if (rows.pos[r] > l.q_pos[i]) {
            logits[r] = -std::numeric_limits<float>::infinity();
            continue;
          }
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += static_cast<double>(q[d]) * k[r * hd + d];
          logits[r] = static_cast<float>(dot) * scale;
          mx = std::max(mx, logits[r]);
        }
        double sum = 0;
        for (int64_t r = 0; r < n_rows; ++r)
          sum += std::isinf(logits[r]) ? 0.0 : std::exp(logits[r] - mx);
        float* out = w.p.data() + (static_cast<size_t>(ih) * n_obs + i) * n_ctx;
        for (int64_t j = 0; j < n_ctx; ++j) {
          const float z = logits[n_prefix + j];
          out[j] = std::isinf(z) ? 0.0f : static_cast<float>(std::exp(z - mx) / sum);
        }
      }
    }
  }
  return w;
}

Scores random_scores(int n_layers, int n_kv_heads, int64_t n_ctx, uint64_t seed) {
  Scores s(n_layers, n_kv_heads, n_ctx);
  SplitMix64 rng(seed);
  for (float& v : s.data) v = static_cast<float>(rng.next() >> 40) * 0x1p-24f;
  return s;
}

Scores streaming_scores(int n_layers, int n_kv_heads, int64_t n_ctx, int n_sink) {
  Scores s(n_layers, n_kv_heads, n_ctx);
  for (int il = 0; il < n_layers; ++il)
    for (int ih = 0; ih < n_kv_heads; ++ih)
      for (int64_t j = 0; j < n_ctx; ++j)
        s.at(il, ih, j) = j < n_sink ? 2.0f : static_cast<float>(j + 1) / static_cast<float>(n_ctx);
  return s;
}

Scores knorm_scores(const KvCache& cache, int64_t n_prefix, int64_t n_ctx) {
  const KvCacheConfig& c = cache.config();
  Scores s(c.n_layers, c.n_kv_heads, n_ctx);
  const int64_t hd = c.head_dim;
  for (int il = 0; il < c.n_layers; ++il) {
    std::vector<HeadRows> rows = cache.read_layer(il);
    for (int ih = 0; ih < c.n_kv_heads; ++ih) {
      const HeadRows& r = rows[ih];
      KVZ_CHECK(static_cast<int64_t>(r.pos.size()) >= n_prefix + n_ctx,
                "knorm needs the full cache: layer {} head {} has {} rows", il, ih, r.pos.size());
      for (int64_t j = 0; j < n_ctx; ++j) {
        double sq = 0;
        for (int64_t d = 0; d < hd; ++d) {
          const double x = cpu::f16_to_f32(r.k[static_cast<size_t>((n_prefix + j) * hd + d)]);
          sq += x * x;
        }
        s.at(il, ih, j) = -static_cast<float>(std::sqrt(sq));
      }
    }
  }
  return s;
}

Scores snapkv_scores(const std::vector<ObservedLayer>& layers, int64_t n_prefix, int64_t n_ctx,
                     float scale, int kernel) {
  check_layers(layers, n_prefix, n_ctx);
  KVZ_CHECK(kernel >= 1 && kernel % 2 == 1, "pooling kernel {} must be odd", kernel);
  const int L = static_cast<int>(layers.size()), H = layers[0].n_kv_heads;
  const int G = layers[0].n_heads / H, half = kernel / 2;
  Scores s(L, H, n_ctx);
  for_each_layer(L, [&](int il) {
    std::vector<float> mean(static_cast<size_t>(n_ctx));
    const WindowAttention w = window_attention(layers[il], n_prefix, n_ctx, scale);
    for (int ih = 0; ih < w.n_heads; ++ih) {
      std::fill(mean.begin(), mean.end(), 0.0f);
      for (int64_t i = 0; i < w.n_obs; ++i)
        for (int64_t j = 0; j < n_ctx; ++j) mean[j] += w.at(ih, i, j) / static_cast<float>(w.n_obs);
      // max_pool1d(kernel, stride 1, padding kernel/2): padding never wins a max.
      for (int64_t j = 0; j < n_ctx; ++j) {
        float mx = 0.0f;
        for (int64_t t = std::max<int64_t>(0, j - half);
             t <= std::min<int64_t>(n_ctx - 1, j + half); ++t)
          mx = std::max(mx, mean[t]);
        s.at(il, ih / G, j) += mx / static_cast<float>(G);
      }
    }
  });
  return s;
}

Scores tova_scores(const std::vector<ObservedLayer>& layers, int64_t n_prefix, int64_t n_ctx,
                   float scale) {
  check_layers(layers, n_prefix, n_ctx);
  const int L = static_cast<int>(layers.size()), H = layers[0].n_kv_heads;
  Scores s(L, H, n_ctx);
  for_each_layer(L, [&](int il) {
    const WindowAttention w = window_attention(layers[il], n_prefix, n_ctx, scale);
    for (int64_t j = 0; j < n_ctx; ++j) {
      float avg = 0.0f;
      for (int ih = 0; ih < w.n_heads; ++ih)
        avg += w.at(ih, w.n_obs - 1, j) / static_cast<float>(w.n_heads);
      for (int kh = 0; kh < H; ++kh) s.at(il, kh, j) = avg;
    }
  });
  return s;
}

Scores h2o_window_scores(const std::vector<ObservedLayer>& layers, int64_t n_prefix, int64_t n_ctx,
                         float scale) {
  check_layers(layers, n_prefix, n_ctx);
  const int L = static_cast<int>(layers.size()), H = layers[0].n_kv_heads;
  const int G = layers[0].n_heads / H;
  Scores s(L, H, n_ctx);
  for_each_layer(L, [&](int il) {
    const WindowAttention w = window_attention(layers[il], n_prefix, n_ctx, scale);
    for (int ih = 0; ih < w.n_heads; ++ih)
      for (int64_t i = 0; i < w.n_obs; ++i)
        for (int64_t j = 0; j < n_ctx; ++j) {
          float& v = s.at(il, ih / G, j);
          v = std::max(v, w.at(ih, i, j));
        }
  });
  return s;
}

std::vector<std::string> known_methods() {
  return {"kvzip",
          "kvzip_head",
          "snapkv",
          "pyramidkv",
          "tova",
          "h2o",
          "streaming",
          "knorm",
          "random",
          "expected_attention",
          "adakv_snapkv",
          "adakv_expected_attention",
          "expected_attention_e2"};
}

MethodInfo method_info(std::string_view name) {
  // Budgets: KVzip's global threshold for KVzip and for H2O (both raw attention probabilities,
  // comparable across heads); a per-head budget where the method defines one (SnapKV as the
  // brief specifies, TOVA, StreamingLLM, Knorm, Random, Expected Attention as in kvpress'
  // ScorerPress); PyramidKV's layer budgets over SnapKV's scores; whole heads for KVzip's
  // head-level variant (its head scores come from elsewhere, no per-sample scoring); AdaKV's
  // per-layer budgets over SnapKV's and Expected Attention's scores (the kvpress leaderboard's
  // adakv_snapkv and adakv_expected_attention_e2).
  if (name == "kvzip") return {"kvzip", Budget::kGlobal, false, true};
  if (name == "kvzip_head") return {"kvzip_head", Budget::kHead, false, false};
  if (name == "snapkv") return {"snapkv", Budget::kPerHead, true, false};
  if (name == "pyramidkv") return {"pyramidkv", Budget::kPyramid, true, false};
  if (name == "expected_attention")
    return {"expected_attention", Budget::kPerHead, false, false, true};
  if (name == "expected_attention_e2")  // adakv_expected_attention's epsilon, per-head budget
    return {
        "expected_attention_e2", Budget::kPerHead, false, false, true, "expected_attention", 1e-2f};
  if (name == "adakv_snapkv") return {"adakv_snapkv", Budget::kAdaKv, true, false, false, "snapkv"};
  if (name == "adakv_expected_attention")
    return {"adakv_expected_attention", Budget::kAdaKv, false, false, true,
            "expected_attention",       1e-2f};
  if (name == "tova") return {"tova", Budget::kPerHead, true, false};
  if (name == "h2o") return {"h2o", Budget::kGlobal, true, false};
  if (name == "streaming") return {"streaming", Budget::kPerHead, false, false};
  if (name == "knorm") return {"knorm", Budget::kPerHead, false, false};
  if (name == "random") return {"random", Budget::kPerHead, false, false};
  std::string known;
  for (const std::string& m : known_methods()) known += (known.empty() ? "" : ", ") + m;
  throw InputError(fmt::format("unknown method '{}' (known: {})", name, known));
}

}  // namespace kvz
