// Device-resident weights of one model (model/). Matrices are [out_features, in_features] in their
// file's DType (quantised blocks along in_features); norms and biases are f32.
#pragma once

#include <string>
#include <vector>

#include "runtime/device.h"

namespace kvz {

struct LayerWeights {
  Tensor attn_norm;  // [d_model] f32
  Tensor wq, wk, wv,
      wo;  // [n_heads*head_dim | n_kv_heads*head_dim, d_model], wo [d_model, n_heads*head_dim]
  Tensor bq, bk, bv;                     // optional biases [out] f32 (Qwen2)
  Tensor q_norm, k_norm;                 // optional [head_dim] f32 (Qwen3, Gemma3)
  Tensor post_attn_norm, post_ffn_norm;  // optional [d_model] f32 (Gemma3)
  Tensor ffn_norm;                       // [d_model] f32
  Tensor w_gate, w_up;                   // [d_ff, d_model]
  Tensor w_down;                         // [d_model, d_ff]
};

struct Weights {
  Tensor tok_embd;     // [n_vocab, d_model]
  Tensor output_norm;  // [d_model] f32
  Tensor output;       // [n_vocab, d_model]; the same bytes as tok_embd when tied
  Tensor rope_inv_freq, rope_inv_freq_local;  // [rot_dims/2] f32 (global / sliding layers)
  std::vector<LayerWeights> layers;
  std::vector<Buffer> storage;  // owns every tensor above
  size_t bytes = 0;             // device bytes of all weights
};

}  // namespace kvz
