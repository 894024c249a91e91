// The model-family registry (model/families): one file per family says, as data, how its files map
// onto ModelConfig and the weights: the GGUF architecture and Hugging Face model_type that name it,
// its tensor names, and its quirks (biases, q/k norms, post norms, norm convention, activation,
// RoPE, sliding-window layers, embedding scale, chat template). The loaders, the synthetic models
// and the chat template read these fields; no code outside this folder compares architecture names
// (STYLE B12). How to add a family: docs/ARCHITECTURE.md.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "model/families/tensor_names.h"
#include "model/model_config.h"

namespace kvz {

struct ModelFamily {
  // Names.
  const char* name;           // ModelConfig::arch_name: model identities, `kvzip info`
  const char* gguf_arch;      // GGUF general.architecture; its keys are "<gguf_arch>.<key>"
  const char* hf_model_type;  // Hugging Face config.json model_type
  const TensorNames* gguf_tensors = &kGgufTensorNames;
  const TensorNames* hf_tensors = &kHfTensorNames;

  // Block structure.
  bool qkv_bias = false;    // biases on the q, k and v projections
  bool qk_norm = false;     // per-head RMSNorm on q and k before RoPE
  bool post_norms = false;  // norms after attention and after the MLP too
  Activation act = Activation::kSilu;
  // config.json key naming the activation, the one value accepted there, and whether the key may
  // be absent (then it means hf_act).
  const char* hf_act_key = "hidden_act";
  const char* hf_act = "silu";
  bool hf_act_optional = true;

  // Norms: Hugging Face stores w of x * (1 + w); the loader adds the 1 once (GGUF stores 1 + w).
  bool hf_norm_plus_one = false;

  // Embeddings.
  bool embedding_scale_sqrt_d = false;  // embeddings are multiplied by sqrt(d_model)
  bool hf_tied_default = false;         // tie_word_embeddings when config.json does not say

  // RoPE. llama.cpp's converters permute LLaMA's q/k rows for adjacent-pair rotation (GGUF and
  // llama2.c checkpoints); Hugging Face files keep rotate_half (NeoX) order for every family.
  RopeStyle gguf_rope_style = RopeStyle::kNeox;

  // Sliding-window (local) layers: with sliding_pattern n > 0, layer il is local unless
  // (il + 1) % n == 0 (a file's own layer list or pattern wins); local layers use the RoPE base
  // local_rope_base unless the file names another, and a window of gguf_default_window where a
  // GGUF does not say (Hugging Face configs must).
  int sliding_pattern = 0;
  float local_rope_base = 0;
  int gguf_default_window = 0;

  // Attention: the logit scale is query_pre_attn_scalar^-1/2 (required in config.json, optional
  // in a GGUF: head_dim) instead of head_dim^-1/2; config.json may give logit soft-caps
  // (attn_logit_softcapping, final_logit_softcapping).
  bool query_pre_attn_scalar = false;
  bool hf_softcaps = false;

  // Chat template (model/chat_template.cpp picks the format from the vocabulary's special
  // tokens): the ChatML postfix also closes an empty <think> block where the vocabulary has one.
  bool chat_think_block = false;
};

// The families, one file each (model/families/<family>.cpp).
extern const ModelFamily kLlamaFamily;   // LLaMA 2/3, SmolLM, llama2.c checkpoints
extern const ModelFamily kQwen2Family;   // Qwen2, Qwen2.5
extern const ModelFamily kQwen3Family;   // Qwen3
extern const ModelFamily kGemma3Family;  // Gemma 3 (text)

// Every registered family, in the order error messages list them.
std::span<const ModelFamily* const> model_families();
// The family named `name` (ModelConfig::arch_name), or nullptr.
const ModelFamily* find_family(std::string_view name);
// The family of a GGUF's general.architecture / a config.json's model_type; an unknown one throws
// FormatError naming it, `source` and the supported ones.
const ModelFamily& family_for_gguf(std::string_view gguf_arch, const std::string& source);
const ModelFamily& family_for_hf(std::string_view model_type, const std::string& source);

// Sets c's family fields: arch_name, the block-structure flags, the activation, the embedding
// scale (needs d_model), the sliding-layer pattern (needs n_layers) and the local RoPE base
// (rope_base where the family has no local layers; needs rope_base). The loaders call it once
// the file's sizes and RoPE base are read, then apply what the file itself says.
void apply_family(const ModelFamily& f, ModelConfig& c);

}  // namespace kvz
