// KVzap training data from our own engine (model/): the repeat chat of ALGORITHMS.md 3.1 is run
// through the forward pass once; per layer the attention-input hidden states of the prompt tokens
// are the inputs and the log KVzip+ scores (kvzip/kvzap.h kvzap_targets) the targets. Also the
// per-layer host scorer that the session and the evaluation use at inference.
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

// Runs a KVzap surrogate inside the forward pass: a HiddenHook that downloads each layer's
// attention-input hidden states and predicts their log-scores on the host (the surrogate is a
// few small GEMMs; each layer waits for the device once). scores(il) then holds
// [n_tokens, n_kv_heads] of the last run.
class KvzapScorer {
 public:
  explicit KvzapScorer(const KvzapModel& m);
  const HiddenHook& hook() const { return hook_; }
  const std::vector<float>& scores(int il) const { return scores_[static_cast<size_t>(il)]; }

 private:
  const KvzapModel& model_;
  std::vector<float> x_;
  std::vector<std::vector<float>> scores_;
  HiddenHook hook_;
};

// Throws FormatError unless `m` was trained for a model of this shape and identity.
void check_kvzap_model(const KvzapModel& kvzap, const Model& m, const std::string& path);

}  // namespace kvz
