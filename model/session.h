// Session: the KVzip workflow users know — prefill(context) once, score() by context
// reconstruction, prune(ratio), then generate(query) any number of times from the compressed
// cache (model/). ALGORITHMS.md sections 1, 2 and 6.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvzip/compressor.h"
#include "kvzip/kv_cache.h"
#include "kvzip/kvzap.h"
#include "kvzip/pruner.h"
#include "model/forward.h"

namespace kvz {

// (done, total) units of the current phase.
using ProgressFn = std::function<void(int64_t, int64_t)>;

// Prefill chunk: with tensor cores, long chunks keep the matmuls busy (bench/RESULTS.md, "Prefill
// chunk"); 2048 also fits the forward sized for scoring.
constexpr int kDefaultPrefillChunk = 512, kDefaultPrefillChunkTensorCores = 2048;
int default_prefill_chunk(const Device& dev);

struct SessionOptions {
  // Tokens per forward during prefill; 0: kDefaultPrefillChunkTensorCores where matmuls run on
  // tensor cores (fewer, larger dispatches), else kDefaultPrefillChunk.
  int prefill_chunk = 0;
  int score_chunk = 2000;  // context tokens per reconstruction chunk (KVzip m)
  const char* instruction = kInstructionQa;
  // Storage types of the cached K and V rows (llama.cpp's --cache-type-k / -v): f16, q8_0 or q4_0
  // (runtime/kv_quant.h; docs/KVQUANT.md). Rows are quantised once, when appended.
  DType cache_type_k = DType::kF16, cache_type_v = DType::kF16;
  // Most prompts generate_batch() answers in one batched forward (logit rows kept per step).
  int max_batch = 1;
};

struct GenerateOptions {
  int max_new_tokens = 64;
  float temperature = 0.0f;  // 0 = greedy (argmax)
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  // llama.cpp's repetition penalty over the last repeat_last_n tokens (the query's text tokens,
  // then the answer's) and min-p (runtime/ops/logit_penalty.h); 1 and 0 = off.
  float repeat_penalty = 1.0f;
  int repeat_last_n = 64;
  float min_p = 0.0f;
  bool update_cache = false;         // keep query/answer pairs (multi-turn)
  bool ignore_eos = false;           // decode exactly max_new_tokens (benchmarks)
  std::vector<int32_t> stop_tokens;  // ids that also end the answer (beside the model's own)
  // Record step i + 1 before reading token i back, so that the GPU does not wait for the host
  // between tokens (same tokens; off with KVzap, and everywhere with KVZ_NO_DECODE_AHEAD=1).
  bool decode_ahead = true;
  std::function<void(std::string_view)> on_text;  // streamed decoded text
};

struct GenerateResult {
  std::string text;
  std::vector<int32_t> tokens;
  int n_prompt_tokens = 0;
  double prefill_ms = 0, decode_ms = 0;
};

struct PruneResult {
  double ratio = 1.0;          // requested fraction of context pairs kept
  double kept_fraction = 1.0;  // actual (ties make it lower)
  size_t bytes_before = 0, bytes_after = 0;
  double ms = 0;
};

// kPair: KVzip's global threshold; kPairUniform: the same number of pairs per head; kHead:
// head-level scores; kKvpress: kvpress KVzipPress's bottom-k rule (parity with kvpress);
// kPyramid: PyramidKV's linearly decreasing layer budgets, the same count in every head of a layer;
// kAdaKv: AdaKV's budget per layer shared by its heads, with a floor per head (prune_adakv).
enum class PruneLevel { kPair, kPairUniform, kHead, kKvpress, kPyramid, kAdaKv };

class KvzapScorer;

// Token ids of the system prefix (chat header + system message + open user turn) followed by
// `instruction`, as Session::prefill puts them before the context.
std::vector<int32_t> prefix_tokens(const Model& model, std::string_view instruction);
// Token ids of a query turn after a cached context: "\n\n" + query + the template's postfix.
std::vector<int32_t> query_tokens(const Model& model, std::string_view query);

class Session {
 public:
  Session(const Model& model, SessionOptions opts = {});
  ~Session();

  // Tokenises system prefix + instruction + context and prefills it in chunks (progress per
  // chunk). Throws InputError when the context does not fit the model's context length.
  // `hook`, if given, runs in every layer of every prefill chunk (scorers that observe the
  // prefill queries, e.g. Expected Attention); chunks cover positions 0, 1, ... in order.
  void prefill(std::string_view context, const ProgressFn& progress = {},
               const LayerHook* hook = nullptr);
  // The same from token ids (benchmarks, evaluations that tokenise themselves).
  void prefill_tokens(std::span<const int32_t> prefix, std::span<const int32_t> context,
                      const ProgressFn& progress = {}, const LayerHook* hook = nullptr);
  // Context-dependent reconstruction scoring of the prefilled context.
  // `prompts` overrides the model's own reconstruction prompts (parity with another
  // implementation's exact token ids).
  const Scores& score(const CompressorOptions& opts = {}, const ProgressFn& progress = {},
                      const ReconstructionPrompts* prompts = nullptr);
  // Keeps `ratio` of the context pairs (KVzip's kept fraction). kHead uses `head_scores`.
  // Requires score() first (except kHead). With retain on, the full cache is kept so any later
  // ratio can be applied without rescoring.
  PruneResult prune(double ratio, PruneLevel level = PruneLevel::kPair,
                    const HeadScores* head_scores = nullptr);
  // KVzap's threshold + window rule over the pair scores (set_scores; e.g. kvzap_scores()) as if
  // the prefill had been one forward (pruner.h prune_threshold); honours retain like prune().
  PruneResult prune_threshold(float threshold, int window = 128);
  // Restores the full (uncompressed) cache when retain mode kept it.
  void restore_full();
  // Online KVzap (ALGORITHMS.md 3.4): from the next prefill on, every forward of prefill() and
  // generate() predicts the log-scores of its new rows with `m` and evicts, after each forward,
  // the rows that left the `window` most recent positions with a score below the threshold. The
  // system prefix is never evicted (as for every method here). generate() without update_cache
  // decides only its own query/answer rows, so every query sees the same compressed context;
  // with update_cache the context rows still in the window are decided too. nullptr turns it off.
  // `m` must outlive the session or the next set_kvzap.
  void set_kvzap(const KvzapModel* m, KvzapOptions o = {});
  // Surrogate log-scores of the context rows from the last prefill with KVzap on (empty else).
  const Scores& kvzap_scores() const { return kvzap_scores_; }
  // Pairs decided / evicted by online KVzap since the last prefill.
  int64_t kvzap_decided() const;
  int64_t kvzap_evicted() const;
  // Replaces the pair scores prune() uses by another scorer's (kvzip/baselines.h). Throws
  // InputError unless they cover exactly the prefilled context.
  void set_scores(Scores s);
  // Runs `tokens` after the cached rows (an observation window, e.g. the first query for the
  // query-aware baselines), calling `hook` in every layer after their K/V rows are appended, then
  // removes those rows: the cache and the next position are left as they were. Throws InputError
  // when the window does not fit one forward.
  void observe_tokens(std::span<const int32_t> tokens, const LayerHook& hook);
  GenerateResult generate(std::string_view query, const GenerateOptions& opts = {});
  // Answers a prompt given as token ids (already wrapped in the turn template).
  GenerateResult generate_tokens(std::span<const int32_t> prompt, const GenerateOptions& opts = {});
  // Answers each prompt from the current cache as generate_tokens() would without update_cache,
  // up to SessionOptions::max_batch at once: every prompt runs on its own copy of the cache and
  // each decode step is one batched forward (Forward::run_batch) over the unfinished answers.
  // Greedy without penalties, stop tokens or callbacks only; other options, KVzap or
  // max_batch 1 answer one prompt at a time through generate_tokens(). The batched forward may
  // round differently from the one-row forward, so a near tie can pick another token.
  // `from`, when given, names for each prompt the cache it starts from instead of the current
  // one: a copy_cache() of this session taken after some prune, so answers from several pruned
  // caches share each batched forward. Each must hold this session's prefix and context rows.
  // Batched answers report their share of the group's time: prefill_ms = the prompts' phase (cache
  // copies and prompt forwards) / n, decode_ms = the decode steps' / n, so sums stay totals.
  std::vector<GenerateResult> generate_batch(std::span<const std::vector<int32_t>> prompts,
                                             const GenerateOptions& opts = {},
                                             std::span<const KvCache* const> from = {});
  // An independent copy of the current cache (full, or as the last prune left it).
  std::unique_ptr<KvCache> copy_cache();

  // Compressed-cache files (kvzip/cache_file.h): the cache, tokens, positions and scores, tied
  // to the model's identity. load_cache throws FormatError on a corrupt or mismatched file.
  void save_cache(const std::string& path);
  void load_cache(const std::string& path);

  void set_retain(bool on) { retain_ = on; }
  const Model& model() const { return model_; }
  KvCache& cache() { return *cache_; }
  const Scores& scores() const { return scores_; }
  int64_t n_prefix() const { return n_prefix_; }
  int64_t n_context() const { return n_context_; }
  double prefill_ms() const { return prefill_ms_; }
  // GPU time per op kind so far (empty unless KVZ_PROFILE=1; see Forward::profile()).
  const std::map<std::string, Forward::OpTime>& op_profile() {
    forward_.collect(rec_);
    return forward_.profile();
  }
  // Starts op_profile() afresh (after collecting what is in flight).
  void reset_op_profile() {
    forward_.collect(rec_);
    forward_.clear_profile();
  }
  double score_ms() const { return score_ms_; }
  // Fraction of the context pairs the cache keeps: 1 after prefill, the last prune's, or the loaded
  // cache file's.
  double kept_fraction() const { return kept_fraction_; }
  // Tokens of a query turn: "\n\n" + query + postfix.
  std::vector<int32_t> query_tokens(std::string_view query) const;
  // Tokens prefill() puts before the context: the system prefix and the instruction.
  std::vector<int32_t> prefix_tokens() const;
  ReconstructionPrompts reconstruction_prompts(SinkPolicy variant = SinkPolicy::kOriginal) const;

 private:
  // generate_batch: prompts.size() <= max_batch answers into out, prompt i from from[i] (empty:
  // the current cache).
  void generate_group(std::span<const std::vector<int32_t>> prompts, const GenerateOptions& opts,
                      std::span<const KvCache* const> from, std::span<GenerateResult> out);
  // Runs `tokens` through the model in chunks at positions next_pos_..., advancing next_pos_.
  // A reconstruction input runs as one forward (the scoring hook sees all its queries at once).
  void feed(std::span<const int32_t> tokens, int n_logits, const ProgressFn& progress,
            const LayerHook* hook = nullptr, int chunk = 0, bool kvzap = false);
  // After a forward with KVzap on: records the new rows' scores and evicts what left the window.
  void kvzap_step(std::span<const int32_t> pos);
  // The model's cache layout with the session's K/V storage types.
  KvCacheConfig cache_config() const;
  PruneResult apply_keep(const KeepSet& keep, double ratio,
                         std::chrono::steady_clock::time_point t0);
  // Milliseconds since t0 (the phase times of GenerateResult, PruneResult, prefill and scoring).
  static double ms_since(std::chrono::steady_clock::time_point t0);

  const Model& model_;
  SessionOptions opts_;
  Forward forward_;
  Recorder rec_;
  std::unique_ptr<KvCache> cache_, full_cache_;
  Scores scores_;
  std::vector<int32_t> prefix_tokens_, context_tokens_;
  int64_t n_prefix_ = 0, n_context_ = 0;
  int32_t next_pos_ = 0;
  bool retain_ = false;
  double kept_fraction_ = 1.0;
  Buffer lse_buf_;  // [forward max_tokens, n_heads] f32 row log-sum-exp of the scoring kernel
  Buffer q16_buf_;  // [forward max_tokens, n_heads, head_dim] f16 (tensor-core scoring only)
  double prefill_ms_ = 0, score_ms_ = 0;
  // Online KVzap (set_kvzap): scorer, evictor, recorded context scores, and the lowest position
  // the evictor may decide (n_prefix, or the query start inside generate without update_cache).
  std::unique_ptr<KvzapScorer> kvzap_scorer_;
  std::unique_ptr<KvzapEvictor> kvzap_;
  KvzapOptions kvzap_opts_;
  Scores kvzap_scores_;
  int32_t kvzap_min_pos_ = 0;
};

}  // namespace kvz
