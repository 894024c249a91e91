// Rotary position embedding (runtime/ops).
#pragma once

#include <vector>

#include "runtime/recorder.h"

namespace kvz {

// kNormal: rotates adjacent pairs (2i, 2i+1) (llama.cpp/GGUF LLaMA, llama2.c).
// kNeox: rotates (i, i + rot_dims/2) ("rotate_half": HF, Qwen2/3 and Gemma3 GGUFs).
enum class RopeStyle { kNormal, kNeox };

// How inverse frequencies are derived (ALGORITHMS.md 6.1).
struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3, kYarn } type = Type::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;   // llama3
  float high_freq_factor = 4.0f;  // llama3
  int original_context = 8192;    // llama3 / yarn
};

// inv_freq[i] = base^(-2i / rot_dims) for i < rot_dims/2, then scaled as `scaling` says.
std::vector<float> rope_inv_freqs(float base, int rot_dims, const RopeScaling& scaling);
// cos/sin multiplier (YaRN's 0.1 ln(factor) + 1; 1 otherwise).
float rope_attn_factor(const RopeScaling& scaling);

// The rotation: the first rot_dims dims of every head are rotated by angle pos * inv_freq[i];
// cos/sin are multiplied by attn_factor. Shared by rope() and the fused rope of kv_write().
struct RopeParams {
  Tensor inv_freq;  // [rot_dims / 2] f32
  RopeStyle style = RopeStyle::kNeox;
  int rot_dims = 0;  // 0 = head_dim
  float attn_factor = 1.0f;
};
// In place on x: [n_tokens, n_heads, head_dim] f32, token t at position pos[t] ([n_tokens] i32).
struct RopeArgs : RopeParams {
  Tensor x, pos;
};
void rope(Recorder& rec, const RopeArgs& args);
// The rotated dims of `args` (rot_dims, or head_dim for 0), after checking shapes and dtypes as
// rope() does (aborts on a mismatch).
int rope_rot_dims(const RopeArgs& args);

namespace cpu {
void rope_ref(const RopeArgs& args);
}

}  // namespace kvz
