// Chunked reconstruction scoring (kvzip/). ALGORITHMS.md 1.2-1.3, KVzip Alg. 1.
#include "kvzip/compressor.h"

#include <algorithm>
#include <cmath>

namespace kvz {
namespace {

// The reconstruction rows of every head of layer il sit at rows N.. with positions N.. (1.2).
void check_appended(const KvCache& cache, int il, int64_t N, int64_t n_in) {
  for (int ih = 0; ih < cache.config().n_kv_heads; ++ih) {
    const std::vector<int32_t>& pos = cache.positions(il, ih);
    bool ok = static_cast<int64_t>(pos.size()) == N + n_in;
    for (int64_t i = 0; ok && i < n_in; ++i) ok = pos[static_cast<size_t>(N + i)] == N + i;
    if (!ok)
      throw Error(fmt::format(
          "the reconstruction pass did not append its {} tokens to the prefilled cache "
          "at positions {}.. (layer {} head {} has {} rows); scores would not see the context",
          n_in, N, il, ih, pos.size()));
  }
}

}  // namespace

ReconstructionPromptText reconstruction_prompt_text(SinkPolicy variant) {
  const char* next = variant == SinkPolicy::kOriginal
                         ? "\n\nRepeat the part of the previous context exactly, starting with "
                         : "\n\nRepeat the part of the previous context exactly, starting with";
  return {"\n\nRepeat the previous context exactly.", next};
}

std::vector<int32_t> reconstruction_input(std::span<const int32_t> context, int64_t a, int64_t b,
                                          const ReconstructionPrompts& p, int overlap) {
  KVZ_CHECK(0 <= a && a < b && b <= static_cast<int64_t>(context.size()) && overlap >= 0,
            "chunk [{}, {}) of {}", a, b, context.size());
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

Scores score_context(Recorder& rec, KvCache& cache, std::span<const int32_t> context,
                     int64_t n_prefix, const ReconstructionPrompts& prompts,
                     const CompressorOptions& opts, const ReconstructionPass& pass,
                     const ScoreKernel& kernel,
                     const std::function<void(int64_t, int64_t)>& progress) {
  const KvCacheConfig& cfg = cache.config();
  const int64_t n_ctx = static_cast<int64_t>(context.size()), N = n_prefix + n_ctx,
                H = cfg.n_kv_heads;
  if (opts.chunk <= 0)
    throw InputError(fmt::format("scoring chunk {} must be positive", opts.chunk));
  if (opts.overlap < 0)
    throw InputError(fmt::format("chunk overlap {} must not be negative", opts.overlap));
  KVZ_CHECK(pass && kernel, "score_context needs a reconstruction pass and a score kernel");
  for (int il = 0; il < cfg.n_layers; ++il)
    for (int ih = 0; ih < H; ++ih) {
      const std::vector<int32_t>& pos = cache.positions(il, ih);
      KVZ_CHECK(static_cast<int64_t>(pos.size()) == N &&
                    (N == 0 || (pos.front() == 0 && pos.back() == N - 1)),
                "score_context needs the full prefilled cache: layer {} head {} has {} rows, "
                "expected {} at "
                "positions 0..{}",
                il, ih, pos.size(), N, N - 1);
    }
  Scores scores(cfg.n_layers, H, n_ctx);
  Device& dev = cache.device();
  const float scale =
      1.0f / std::sqrt(static_cast<float>(cfg.head_dim));  // both references' choice (6.3)
  const int64_t m_max = std::min<int64_t>(opts.chunk, n_ctx);
  std::vector<Buffer> out(static_cast<size_t>(cfg.n_layers));  // [n_kv_heads, m] f32 per layer
  for (Buffer& b : out) b = dev.alloc(static_cast<size_t>(H * std::max<int64_t>(m_max, 1)) * 4);
  std::vector<float> host(static_cast<size_t>(H * m_max));
  for (int64_t a = 0; a < n_ctx; a += opts.chunk) {
    const int64_t b = std::min<int64_t>(a + opts.chunk, n_ctx), m = b - a;
    const std::vector<int32_t> input = reconstruction_input(context, a, b, prompts, opts.overlap);
    const int64_t n_in = static_cast<int64_t>(input.size());
    std::vector<bool> seen(static_cast<size_t>(cfg.n_layers), false);
    ScoreHook hook = [&](Recorder& r, int il, const Tensor& q, const KvCache::LayerView& kv) {
      KVZ_CHECK(il >= 0 && il < cfg.n_layers && !seen[il], "hook called twice or for layer {}", il);
      // The scoring pass must run over this prefilled cache (kvpress#147: it silently did not).
      check_appended(cache, il, N, n_in);
      KVZ_CHECK(q.ndim() == 3 && q.dim(0) == n_in && q.dim(1) % H == 0 && q.dim(2) == cfg.head_dim,
                "hook saw queries {}, input has {} tokens", q.shape_str(), n_in);
      AttnScoreArgs sa;
      sa.q = q;
      sa.k_pool = kv.k_pool;
      sa.block_table = kv.block_table;
      sa.score = out[il].tensor(DType::kF32, {H, m});
      sa.t0 = static_cast<int>(n_prefix + a);
      sa.t1 = static_cast<int>(n_prefix + b);
      // Sinks (1.3 step 2, 1.5): original = the whole system prefix; kvpress = min(4, chunk start).
      sa.n_sink = static_cast<int>(
          opts.sinks == SinkPolicy::kOriginal ? n_prefix : std::min<int64_t>(4, sa.t0));
      sa.s0 = static_cast<int>(N);  // the input's rows follow the N prefilled rows
      sa.scale = scale;
      kernel(r, il, sa);
      seen[il] = true;
    };
    try {
      pass(input, hook);
      rec.finish();
      for (int il = 0; il < cfg.n_layers; ++il)
        if (!seen[il])
          throw Error(
              fmt::format("the reconstruction pass skipped the score hook of layer {}", il));
    } catch (...) {
      rec.finish();
      cache.truncate(static_cast<int32_t>(N));
      throw;
    }
    for (int il = 0; il < cfg.n_layers; ++il) {
      dev.download(out[il].view(), host.data(), static_cast<size_t>(H * m) * 4);
      for (int64_t ih = 0; ih < H; ++ih)
        std::copy_n(
            host.begin() + ih * m, m,
            scores.data.begin() + static_cast<int64_t>(scores.index(il, static_cast<int>(ih), a)));
    }
    cache.truncate(static_cast<int32_t>(N));  // drop the reconstruction rows (1.2)
    if (progress) progress(b, n_ctx);
  }
  return scores;
}

}  // namespace kvz
