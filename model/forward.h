// The transformer forward pass, written once against runtime ops for every architecture; quirks
// come from ModelConfig flags (model/).
#pragma once

#include <functional>
#include <map>
#include <span>
#include <string>

#include "kvzip/kv_cache.h"
#include "model/model.h"

namespace kvz {

// Called in every layer after the new K/V rows are written, with the post-RoPE queries
// q: [n_tokens, n_heads, head_dim] f32 (KVzip reconstruction scoring reads them here).
using LayerHook =
    std::function<void(Recorder& rec, int il, const Tensor& q, const KvCache::LayerView& kv)>;

// Called in every layer with the attention-input hidden state h: [n_tokens, d_model] f32 (the
// post-RMSNorm activation the q/k/v projections read; KVzap surrogates read it), recorded on `rec`
// before anything overwrites it.
using HiddenHook = std::function<void(Recorder& rec, int il, const Tensor& h)>;

// The KV-cache shape of a model; sliding-window (local) layers are not prunable.
KvCacheConfig kv_cache_config(const ModelConfig& c);

class Forward {
 public:
  // Allocates activations for up to max_tokens tokens per run() and max_logits logit rows.
  Forward(const Model& model, int max_tokens, int max_logits = 1);

  int max_tokens() const { return max_tokens_; }
  // Appends tokens at `positions` to `cache` and runs every layer. If n_logits > 0, the logits
  // of the last n_logits tokens are computed into logits() rows [0, n_logits); with n_logits == 0
  // the last layer ends after its cache append and its hook (nothing else of it is observable). The
  // work is recorded on `rec` and submitted; call rec.wait() (or finish) before reading results.
  void run(Recorder& rec, std::span<const int32_t> tokens, std::span<const int32_t> positions,
           KvCache& cache, int n_logits, const LayerHook* hook = nullptr,
           const HiddenHook* hidden = nullptr);
  // The same for tokens that GPU work recorded earlier writes (e.g. the previous step's sampled
  // id): ids is i32 with positions.size() elements, read in stream order. Unlike the run above it
  // does not wait for earlier work unless the cache must reallocate (KvCache::append_in_place), so
  // it can be recorded while the step that writes ids still runs. It leaves the submit to the
  // caller (one submission per step, with what the caller records after it).
  void run(Recorder& rec, const Tensor& ids, std::span<const int32_t> positions, KvCache& cache,
           int n_logits);
  // Continuous batching: one decode step of caches.size() independent sequences in one forward.
  // Token i at positions[i] is appended to *caches[i] and attends to that cache only (each
  // sequence its own ragged view); the matmuls run on all rows at once, so the weights are read
  // once per step. Logits rows [0, caches.size()) are computed. The caches must be distinct;
  // needs caches.size() <= max_tokens() and <= max_logits.
  void run_batch(Recorder& rec, std::span<const int32_t> tokens, std::span<const int32_t> positions,
                 std::span<KvCache* const> caches);
  // [max_logits, n_vocab] f32.
  const Tensor& logits() const { return logits_; }

  // GPU time per op kind (KVZ_PROFILE=1): run() brackets every op with timestamps; collect()
  // (called by run() and before a report) adds finished spans to the table, keyed
  // "prefill/<op>" or "decode/<op>" (one-token runs). Ops of all layers share a key.
  struct OpTime {
    double ms = 0;
    int64_t count = 0;
  };
  bool profiling() const { return profile_; }
  void collect(Recorder& rec);
  const std::map<std::string, OpTime>& profile() const { return profile_table_; }
  void clear_profile() { profile_table_.clear(); }

 private:
  const Model& model_;
  int max_tokens_, max_logits_;
  std::vector<Buffer> storage_;
  // Activations, each [max_tokens, width] f32 unless noted.
  Tensor ids_, pos_;  // [max_tokens] i32
  // run_batch: sequence i's position at element i * seq_pos_stride_ (each binding offset must be
  // aligned to the device's storage offset alignment). [max_logits * seq_pos_stride_] i32.
  Tensor seq_pos_;
  int64_t seq_pos_stride_ = 1;
  Tensor x_, h_, q_, k_, v_, attn_, o_, gate_, up_;
  Tensor logits_;  // [max_logits, n_vocab]
  static constexpr int kMaxSplitQueries = 16;
  static constexpr int kLayersPerSubmit = 8;
  Tensor attn_scratch_;  // split-K partials of decode attention (may be undefined)
  Tensor w_scratch_;     // f16 dequantised weight for prefill matmuls (may be undefined)
  Tensor x8_;            // decode: x rounded to int8 for Q4_K matvecs (may be undefined)
  Tensor x8_for(const Tensor& x, std::initializer_list<const Tensor*> ws) const;
  // Rows [row0, row0 + n) of a run belong to one cache (one sequence).
  struct Seq {
    KvCache* cache = nullptr;
    int64_t row0 = 0, n = 0;
  };
  // Every run: the ids come from `tokens` (uploaded) or from `device_ids` (read in place); each
  // of `seqs` appends its rows to its cache and attends to it (hooks only with one sequence).
  void run_(Recorder& rec, std::span<const int32_t> tokens, const Tensor* device_ids,
            std::span<const int32_t> positions, std::span<const Seq> seqs, int n_logits,
            const LayerHook* hook, const HiddenHook* hidden);
  // The pieces of one run (model/forward.cpp): a layer's attention half and FFN half over the
  // run's Step, and the submit policy between layers.
  struct Step;
  void attention_(Recorder& rec, const Step& st, int il, const Tensor& pending,
                  bool stop_after_append);
  void ffn_(Recorder& rec, const Step& st, int il);
  void submit_after_layer_(Recorder& rec, int il, bool device_ids) const;
  void mark_(Recorder& rec, const Step& st, const char* op);
  bool profile_ = false;
  std::map<std::string, OpTime> profile_table_;
};

}  // namespace kvz
