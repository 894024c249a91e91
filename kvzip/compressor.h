// KVzip context-reconstruction scoring, model-agnostic (kvzip/). The model is injected as a
// ReconstructionPass and the score kernel as a ScoreKernel; the compressor builds the chunked,
// teacher-forced inputs of ALGORITHMS.md 1.2 and, through the per-layer hook, asks the kernel for
// the scores of 1.3 with the right key set (sinks, own chunk, the input itself).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kvzip/kv_cache.h"
#include "kvzip/scores.h"
#include "runtime/ops/paged_attention.h"

namespace kvz {

// Token ids of the repeat prompts, tokenised by the model (ALGORITHMS.md 1.2).
struct ReconstructionPrompts {
  std::vector<int32_t> first;  // "\n\nRepeat the previous context exactly."
  std::vector<int32_t>
      next_prefix;  // "\n\nRepeat the part of the previous context exactly, starting with"
  std::vector<int32_t> postfix;  // end of the user turn + assistant header
};

// kOriginal: the KVzip repo; kKvpress: NVIDIA kvpress KVzipPress. Selects the sink block below and
// the prompt text (reconstruction_prompt_text).
//
// kOriginal: the whole system prefix is the softmax sink block, s = n_prefix (KVzip repo).
// kKvpress: s = min(4, absolute start row of the chunk), as kvpress KVzipPress does.
enum class SinkPolicy { kOriginal, kKvpress };

// Repeat-prompt texts of ALGORITHMS.md 1.2, to be tokenised by the model without special tokens
// and followed by the family's postfix (chat template). Original: next_prefix ends in "with "
// (trailing space); kvpress: no trailing space.
struct ReconstructionPromptText {
  std::string first, next_prefix;
};
ReconstructionPromptText reconstruction_prompt_text(SinkPolicy variant);

struct CompressorOptions {
  int chunk = 2000;  // context tokens per reconstruction chunk (m; kvpress uses 2048)
  int overlap = 8;   // previous-chunk tail tokens (ids) quoted in the chunk prompt
  SinkPolicy sinks = SinkPolicy::kOriginal;
};

// Per layer, after the reconstruction input's K/V rows were appended: its post-RoPE queries
// q [n_in, n_heads, head_dim] f32 and the layer's paged cache.
using ScoreHook =
    std::function<void(Recorder& rec, int il, const Tensor& q, const KvCache::LayerView& kv)>;
// Appends `tokens` to the cache at positions N, N+1, ... (N = cache length) and runs the model,
// calling `hook` once in every layer. Must record on the Recorder handed to score_context (or
// finish its own work before returning). The compressor removes the appended rows afterwards.
using ReconstructionPass =
    std::function<void(std::span<const int32_t> tokens, const ScoreHook& hook)>;
// Computes args.score for layer il (runtime's attn_score, or a fake in tests).
using ScoreKernel = std::function<void(Recorder& rec, int il, const AttnScoreArgs& args)>;

// The reconstruction input of the chunk covering context[a, b): for a == 0 prompts.first, else
// prompts.next_prefix + context[max(0, a - overlap), a); then prompts.postfix + context[a, b).
std::vector<int32_t> reconstruction_input(std::span<const int32_t> context, int64_t a, int64_t b,
                                          const ReconstructionPrompts& prompts, int overlap);

// Scores every context pair of a cache holding exactly the prefilled rows 0..N-1 (positions
// 0..N-1, N = n_prefix + context.size()) on every head. Chunk t covers context [t*m, (t+1)*m);
// each context row is scored exactly once, by its chunk. Throws Error if the pass does not append
// its input to this cache at positions N.. (scoring without the prefilled cache) or skips a layer;
// InputError on bad options. The cache is back to its N rows on return and on throw.
Scores score_context(Recorder& rec, KvCache& cache, std::span<const int32_t> context,
                     int64_t n_prefix, const ReconstructionPrompts& prompts,
                     const CompressorOptions& opts, const ReconstructionPass& pass,
                     const ScoreKernel& kernel,
                     const std::function<void(int64_t, int64_t)>& progress = {});

// Same with the runtime's fused attn_score kernel (inline so that kvz_kvzip itself does not
// reference the kernel's implementation).
inline Scores score_context(Recorder& rec, KvCache& cache, std::span<const int32_t> context,
                            int64_t n_prefix, const ReconstructionPrompts& prompts,
                            const CompressorOptions& opts, const ReconstructionPass& pass,
                            const std::function<void(int64_t, int64_t)>& progress = {}) {
  return score_context(
      rec, cache, context, n_prefix, prompts, opts, pass,
      ScoreKernel([](Recorder& r, int, const AttnScoreArgs& a) { attn_score(r, a); }), progress);
}

}  // namespace kvz
