// KVzap (kvzip/): per-layer surrogates that predict a KV pair's log KVzip+ score from the
// attention-input hidden state of its token, the weights file they live in, the training target
// of ALGORITHMS.md 3.1 and threshold + recent-window eviction (3.4). Model-agnostic: model/
// supplies hidden states, queries, keys and values; training lives in kvzap_train.h.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kvzip/kv_cache.h"
#include "kvzip/scores.h"

namespace kvz {

// kLinear: Linear(d_model -> n_kv_heads). kMlp: Linear(d_model -> d_hidden) -> GELU (erf) ->
// Linear(d_hidden -> n_kv_heads). ALGORITHMS.md 3.2.
enum class KvzapKind { kLinear, kMlp };
const char* kvzap_kind_name(KvzapKind k);  // "linear" | "mlp"
// Throws InputError on anything but "linear" / "mlp".
KvzapKind kvzap_kind_from(const std::string& name);

struct KvzapLayer {
  // Linear: w1 [n_kv_heads, d_model], b1 [n_kv_heads]; w2, b2 empty.
  // MLP:    w1 [d_hidden, d_model], b1 [d_hidden], w2 [n_kv_heads, d_hidden], b2 [n_kv_heads].
  std::vector<float> w1, b1, w2, b2;  // row-major f32
};

class KvzapModel {
 public:
  KvzapModel() = default;
  // Zero-initialised weights of the right shapes (d_hidden is ignored for kLinear).
  KvzapModel(KvzapKind kind, int n_layers, int d_model, int d_hidden, int n_kv_heads,
             std::string model_identity);

  KvzapKind kind() const { return kind_; }
  int n_layers() const { return n_layers_; }
  int d_model() const { return d_model_; }
  int d_hidden() const { return d_hidden_; }
  int n_kv_heads() const { return n_kv_heads_; }
  const std::string& model_identity() const { return identity_; }
  KvzapLayer& layer(int il) { return layers_[static_cast<size_t>(il)]; }
  const KvzapLayer& layer(int il) const { return layers_[static_cast<size_t>(il)]; }
  size_t n_params() const;

  // Log-scores of n tokens in layer il: x [n, d_model] f32 -> out [n, n_kv_heads] f32.
  void predict(int il, const float* x, int64_t n, float* out) const;

  // Weights file (little-endian, documented in kvzap.cpp):
  //   "KVZAPW01" | u32 version | u32 kind | u32 n_layers, d_model, d_hidden, n_kv_heads |
  //   u32 identity bytes | identity | f32 weights layer by layer (w1, b1, w2, b2) | u64 FNV-1a of
  //   all preceding bytes.
  // load throws InputError if the file cannot be read and FormatError when it is truncated, too
  // long, fails its checksum, has an unknown version/kind or implausible sizes.
  void save(const std::string& path) const;
  static KvzapModel load(const std::string& path);

 private:
  KvzapKind kind_ = KvzapKind::kLinear;
  int n_layers_ = 0, d_model_ = 0, d_hidden_ = 0, n_kv_heads_ = 0;
  std::string identity_;
  std::vector<KvzapLayer> layers_;
};

// Everything the KVzip+ target of one layer needs (ALGORITHMS.md 1.4, 3.1), for one sequence of
// T tokens attended with a plain causal softmax (the "eager" forward of kvzap/data.py).
struct KvzapTargetInputs {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t n_tokens = 0;
  float scale = 0;                // attention logit scale
  const float* q = nullptr;       // [T, n_heads, head_dim] post-RoPE queries
  const float* k = nullptr;       // [T, n_kv_heads, head_dim] post-RoPE keys
  const float* v = nullptr;       // [T, n_kv_heads, head_dim] values
  const float* x_norm = nullptr;  // [T] ||x_j|| of the attention-input hidden state
  // [n_heads, head_dim, head_dim] Gram matrices W_O^(q)T W_O^(q) of each query head's slice of
  // the output projection, so ||W_O^(q) v||^2 = v^T G_q v.
  const float* wo_gram = nullptr;
  int64_t prompt_begin = 0, prompt_end = 0;  // columns: the original prompt span
  int64_t repeat_begin = 0, repeat_end = 0;  // rows: the repeated span (after the prompt span)
};
// Target y [prompt_end - prompt_begin, n_kv_heads]: log(max over rows j of the repeat span and the
// G query heads of KV head h of A_q[j, i] * ||W_O^(q) v_i|| / ||x_j||), clamped below at 1e-30
// before the log. Softmax in f64 over keys 0..j.
std::vector<float> kvzap_targets(const KvzapTargetInputs& in);

// Threshold + window rule (ALGORITHMS.md 3.4): a pair is evicted iff its predicted log-score is
// below `threshold` once it is older than the `window` most recent tokens. Decisions are final.
struct KvzapOptions {
  float threshold = -4.0f;
  int window = 128;
};

// The post-hoc form over a dense prefill is prune_threshold (pruner.h); KvzapEvictor after a
// prefill that ran as one forward gives the same kept set.
// The online form for a cache that grows token by token (prefill chunks, decode steps): rows are
// pushed with their predicted scores when they enter the cache, and decided when they leave the
// window.
class KvzapEvictor {
 public:
  KvzapEvictor(const KvCacheConfig& cfg, KvzapOptions o);

  const KvzapOptions& options() const { return opts_; }
  // Scores [n, n_kv_heads] of the rows at `positions` (increasing, above everything pushed) of
  // layer il become pending.
  void push(int il, std::span<const int32_t> positions, const float* scores);
  // Decides every pending row with position in [min_pos, next_pos - window). Returns the rows of
  // `cache` to keep when anything was evicted (to be handed to KvCache::compact), else an empty
  // KeepSet (rows.empty()). Rows of the cache that were never pushed are kept.
  KeepSet decide(const KvCache& cache, int32_t next_pos, int32_t min_pos);
  // Forgets pending rows at positions >= end_pos (the cache was truncated there).
  void truncate(int32_t end_pos);
  void clear();

  int64_t n_decided() const { return n_decided_; }
  int64_t n_evicted() const { return n_evicted_; }
  int64_t n_pending(int il, int ih) const;

 private:
  struct Pending {
    std::vector<int32_t> pos;
    std::vector<float> score;
  };
  KvCacheConfig cfg_;
  KvzapOptions opts_;
  std::vector<Pending> pending_;  // [n_layers * n_kv_heads]
  int64_t n_decided_ = 0, n_evicted_ = 0;
};

}  // namespace kvz
