// KVzap training data from our own engine (model/): the repeat chat of ALGORITHMS.md 3.1 is run
// through the forward pass once; per layer the attention-input hidden states of the prompt tokens
// are the inputs and the log KVzip+ scores (kvzip/kvzap.h kvzap_targets) the targets. Also the
// device scorer (the surrogate's matmuls recorded inside the forward) that the session and the
// evaluation use at inference.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "kvzip/kvzap.h"
#include "kvzip/kvzap_train.h"
#include "model/forward.h"

namespace kvz {

// Token layout of one training chat: template prefix (system turn + open user turn), the prompt,
// "\n\nRepeat the previous context exactly.", the template postfix (assistant header), the prompt
// again as the teacher-forced answer.
struct KvzapChat {
  std::vector<int32_t> tokens;
  int64_t prompt_begin = 0, prompt_end = 0, repeat_begin = 0, repeat_end = 0;
};
KvzapChat kvzap_chat(const Model& m, std::span<const int32_t> prompt);

class KvzapCollector {
 public:
  // Prompts up to max_prompt_tokens tokens. Extracts the W_O Gram matrices of every layer once.
  KvzapCollector(const Model& m, int max_prompt_tokens);
  int max_prompt_tokens() const { return max_prompt_; }
  // Runs the chat around `prompt` and appends its prompt tokens' (x, y) pairs to data[il] (one
  // entry per layer, created on first use). Throws InputError if the prompt is empty or too long.
  void collect(std::span<const int32_t> prompt, std::vector<KvzapLayerData>& data);

 private:
  const Model& model_;
  int max_prompt_;
  Forward fwd_;
  Recorder rec_;
  std::vector<std::vector<float>> wo_gram_;  // [n_layers][n_heads, head_dim, head_dim] f32
};

// Runs a KVzap surrogate inside the forward pass on the device: its hook records, in every
// layer, the surrogate's matmuls (and GELU) on the attention-input hidden states into a
// per-layer score buffer, with no wait; fetch() downloads the scores of the last run once.
class KvzapScorer {
 public:
  // Weights are uploaded as f32; runs take at most max_tokens tokens (rounded up to 64).
  KvzapScorer(const KvzapModel& m, Device& dev, int max_tokens);
  const HiddenHook& hook() const { return hook_; }
  // Finishes `rec` and downloads the [n_tokens, n_kv_heads] scores of every layer of the last run.
  void fetch(Recorder& rec, int64_t n_tokens);
  const std::vector<float>& scores(int il) const { return scores_[static_cast<size_t>(il)]; }

 private:
  struct LayerTensors {
    Tensor w1, b1, w2, b2;  // f32, shapes as KvzapLayer (w2/b2 undefined for kLinear)
  };
  const KvzapModel& model_;
  Device& dev_;
  int max_tokens_;
  std::vector<Buffer> storage_;
  std::vector<LayerTensors> layers_;
  Tensor hidden_, ones_;  // [max_tokens, d_hidden] f32 (MLP only): activations, GELU's "up"
  Tensor out_;            // [n_layers, max_tokens, n_kv_heads] f32, written by the hook
  Tensor gathered_;       // the same size: fetch() packs [n_layers, n_tokens, n_kv_heads] here
  std::vector<std::vector<float>> scores_;
  HiddenHook hook_;
};

// Throws FormatError unless `m` was trained for a model of this shape and identity.
void check_kvzap_model(const KvzapModel& kvzap, const Model& m, const std::string& path);

}  // namespace kvz
