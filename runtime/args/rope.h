// Arguments and CPU references of the rotary position embedding op (runtime/args: the data half of
// runtime/ops/rope.h, below both runtime/ops and runtime/cpu so that the CPU backend needs no op
// header).
#pragma once

#include "runtime/tensor.h"

namespace kvz {

// kNormal: rotates adjacent pairs (2i, 2i+1) (llama.cpp/GGUF LLaMA, llama2.c).
// kNeox: rotates (i, i + rot_dims/2) ("rotate_half": HF, Qwen2/3 and Gemma3 GGUFs).
enum class RopeStyle { kNormal, kNeox };

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

namespace cpu {
void rope_ref(const RopeArgs& args);
}

}  // namespace kvz
