// ModelConfig: hyperparameters and named architecture quirks of one model, set by the loaders from
// the file and its family (model/families); the forward pass reads only these flags, never the
// architecture name (model/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/ops/activation.h"
#include "runtime/ops/rope.h"

namespace kvz {

struct ModelConfig {
  // Upper bounds validate() enforces (far above real models; they keep size products in range).
  static constexpr int kMaxLayers = 1024, kMaxDim = 1 << 16, kMaxHeads = 1024, kMaxFf = 1 << 20,
                       kMaxVocab = 1 << 24, kMaxContext = 1 << 24;

  std::string arch_name;  // the family's name (model/families): "llama", "qwen2", "qwen3", "gemma3"
  std::string name;       // general.name or the file name
  int n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, d_ff = 0, n_vocab = 0;
  int max_context = 0;
  float norm_eps = 1e-5f;

  // Attention.
  float attn_scale = 0;             // logit scale (1/sqrt(head_dim), or query_pre_attn_scalar^-0.5)
  bool qkv_bias = false;            // Qwen2
  bool qk_norm = false;             // Qwen3, Gemma3: per-head RMSNorm on q and k before RoPE
  float attn_softcap = 0;           // Gemma 2 style logit soft-cap (0 = none)
  int sliding_window = 0;           // local layers' window (Gemma3)
  std::vector<bool> layer_sliding;  // [n_layers]: local (sliding-window) layer

  // RoPE: global layers use rope_base + rope_scaling; sliding layers rope_base_local unscaled.
  RopeStyle rope_style = RopeStyle::kNeox;
  float rope_base = 10000.0f;
  float rope_base_local = 10000.0f;
  RopeScaling rope_scaling;
  int rot_dims = 0;  // 0 = head_dim

  // Block structure.
  bool post_norms = false;  // Gemma3: norms after attention and after the MLP
  Activation act = Activation::kSilu;
  float embedding_scale = 1.0f;  // Gemma: sqrt(d_model)
  bool tied_embeddings = false;
  float final_softcap = 0;  // logit soft-cap on the output (0 = none)

  // Derived helpers.
  int group() const { return n_heads / n_kv_heads; }
  bool sliding(int il) const { return !layer_sliding.empty() && layer_sliding[il]; }
  // Checks internal consistency; throws FormatError naming `source` on a bad combination.
  void validate(const std::string& source) const;
};

}  // namespace kvz
