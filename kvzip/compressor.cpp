// Chunked reconstruction scoring (kvzip/). ALGORITHMS.md 1.2-1.3, KVzip Alg. 1.
#include "kvzip/compressor.h"

#include <cmath>

#include "runtime/ops/paged_attention.h"

namespace kvz {

std::vector<int32_t> reconstruction_input(std::span<const int32_t> context, int64_t a, int64_t b,
                                          const ReconstructionPrompts& p, int overlap) {
  std::vector<int32_t> in;
  if (a == 0) {
    in = p.first;
  } else {
    in = p.next_prefix;
    int64_t from = std::max<int64_t>(0, a - overlap);
    in.insert(in.end(), context.begin() + from, context.begin() + a);
  }
  in.insert(in.end(), p.postfix.begin(), p.postfix.end());
  in.insert(in.end(), context.begin() + a, context.begin() + b);
  return in;
}

Scores score_context(Recorder& rec, KvCache& cache, std::span<const int32_t> context, int64_t n_prefix,
                     const ReconstructionPrompts& prompts, const CompressorOptions& opts,
                     const ReconstructionPass& pass, const std::function<void(int64_t, int64_t)>& progress) {
  const KvCacheConfig& cfg = cache.config();
  const int64_t n_ctx = static_cast<int64_t>(context.size()), N = n_prefix + n_ctx;
  if (opts.chunk <= 0) throw InputError(fmt::format("scoring chunk {} must be positive", opts.chunk));
  for (int il = 0; il < cfg.n_layers; ++il)
    for (int ih = 0; ih < cfg.n_kv_heads; ++ih)
      KVZ_CHECK(cache.rows(il, ih) == N, "score_context needs the full prefilled cache: layer {} head {} has "
                "{} rows, expected {}", il, ih, cache.rows(il, ih), N);
  Scores scores(cfg.n_layers, cfg.n_kv_heads, n_ctx);
  Device& dev = cache.device();
  const float scale = 1.0f / std::sqrt(static_cast<float>(cfg.head_dim));  // both references' choice (6.3)
  for (int64_t a = 0; a < n_ctx; a += opts.chunk) {
    const int64_t b = std::min<int64_t>(a + opts.chunk, n_ctx), m = b - a;
    std::vector<int32_t> input = reconstruction_input(context, a, b, prompts, opts.overlap);
    const int64_t n_in = static_cast<int64_t>(input.size());
    std::vector<Buffer> out(static_cast<size_t>(cfg.n_layers));  // [n_kv_heads, m] f32 per layer
    std::vector<bool> seen(static_cast<size_t>(cfg.n_layers), false);
    ScoreHook hook = [&](Recorder& r, int il, const Tensor& q, const KvCache::LayerView& kv) {
      // The scoring pass must run over this prefilled cache (kvpress#147: it silently did not).
      for (int ih = 0; ih < cfg.n_kv_heads; ++ih)
        if (cache.rows(il, ih) != N + n_in)
          throw Error(fmt::format("reconstruction pass did not append its {} tokens to the prefilled "
                                  "cache (layer {} head {} has {} rows, expected {})",
                                  n_in, il, ih, cache.rows(il, ih), N + n_in));
      KVZ_CHECK(q.dim(0) == n_in, "hook saw {} queries, input has {}", q.dim(0), n_in);
      out[il] = dev.alloc(static_cast<size_t>(cfg.n_kv_heads * m) * 4);
      AttnScoreArgs sa;
      sa.q = q;
      sa.k_pool = kv.k_pool;
      sa.block_table = kv.block_table;
      sa.score = out[il].tensor(DType::kF32, {cfg.n_kv_heads, m});
      sa.n_sink = static_cast<int>(opts.sinks == SinkPolicy::kOriginal ? n_prefix
                                                                       : std::min<int64_t>(4, n_prefix));
      sa.t0 = static_cast<int>(n_prefix + a);
      sa.t1 = static_cast<int>(n_prefix + b);
      sa.s0 = static_cast<int>(N);
      sa.scale = scale;
      attn_score(r, sa);
      seen[il] = true;
    };
    pass(input, hook);
    rec.finish();
    std::vector<float> host(static_cast<size_t>(cfg.n_kv_heads * m));
    for (int il = 0; il < cfg.n_layers; ++il) {
      KVZ_CHECK(seen[il], "reconstruction pass skipped the hook of layer {}", il);
      dev.download(out[il].view(), host.data(), host.size() * 4);
      for (int ih = 0; ih < cfg.n_kv_heads; ++ih)
        std::copy_n(host.begin() + ih * m, m, scores.data.begin() + static_cast<int64_t>(scores.index(il, ih, a)));
    }
    cache.drop_last(n_in);
    if (progress) progress(b, n_ctx);
  }
  return scores;
}

}  // namespace kvz
