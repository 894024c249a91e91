// KVzip context-reconstruction scoring, model-agnostic (kvzip/). The model is injected as a
// ReconstructionPass; the compressor builds the chunked, teacher-forced inputs of ALGORITHMS.md
// 1.2 and, through the per-layer hook, runs the fused attn_score kernel of 1.3.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "kvzip/kv_cache.h"
#include "kvzip/scores.h"

namespace kvz {

// Token ids of the repeat prompts, tokenised by the model (ALGORITHMS.md 1.2).
struct ReconstructionPrompts {
  std::vector<int32_t> first;        // "\n\nRepeat the previous context exactly."
  std::vector<int32_t> next_prefix;  // "\n\nRepeat the part of the previous context exactly, starting with"
  std::vector<int32_t> postfix;      // end of the user turn + assistant header
};

// kOriginal: the whole system prefix is the softmax sink block (KVzip repo).
// kKvpress: 4 sink rows (kvpress' n_sink), as kvpress KVzipPress does.
enum class SinkPolicy { kOriginal, kKvpress };

struct CompressorOptions {
  int chunk = 2000;  // context tokens per reconstruction chunk (m)
  int overlap = 8;   // previous-chunk tail tokens quoted in the chunk prompt
  SinkPolicy sinks = SinkPolicy::kOriginal;
};

// Per layer, after the reconstruction input's K/V rows were appended: its post-RoPE queries
// q [n_in, n_heads, head_dim] f32 and the layer's paged cache.
using ScoreHook = std::function<void(Recorder& rec, int il, const Tensor& q, const KvCache::LayerView& kv)>;
// Appends `tokens` to the cache at positions N, N+1, ... and runs the model, calling `hook` in
// every layer. The compressor removes the appended rows afterwards.
using ReconstructionPass = std::function<void(std::span<const int32_t> tokens, const ScoreHook& hook)>;

// The reconstruction input of chunk t (0-based): prompt + postfix + context[a, b).
std::vector<int32_t> reconstruction_input(std::span<const int32_t> context, int64_t a, int64_t b,
                                          const ReconstructionPrompts& prompts, int overlap);

// Scores every context pair of a cache holding exactly n_prefix + context.size() rows per head.
// Throws Error if the pass does not append to this cache (scoring without the prefilled cache).
Scores score_context(Recorder& rec, KvCache& cache, std::span<const int32_t> context, int64_t n_prefix,
                     const ReconstructionPrompts& prompts, const CompressorOptions& opts,
                     const ReconstructionPass& pass,
                     const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace kvz
