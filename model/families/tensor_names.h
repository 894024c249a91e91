// Tensor names of a model file format, shared by the families that use that format's standard
// names (model/families): which tensor fills which Weights / LayerWeights field.
#pragma once

#include <string_view>

namespace kvz {

struct TensorNames {
  const char *tok_embd, *output_norm, *output;  // output: optional where embeddings are tied
  const char* layer_prefix;                     // format string of the layer index, e.g. "blk.{}."
  const char *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *q_norm, *k_norm;
  const char* post_attn_norm;       // Gemma-style post norms (ModelConfig::post_norms) only
  const char* ffn_norm;             // pre-FFN norm without post norms
  const char* ffn_norm_post_norms;  // pre-FFN norm with post norms
  const char *post_ffn_norm, *w_gate, *w_up, *w_down;
};

// The start every layer tensor's name shares ("blk."), for counting layers.
constexpr std::string_view layer_stem(const TensorNames& n) {
  const std::string_view p = n.layer_prefix;
  return p.substr(0, p.find("{}"));
}

// llama.cpp's names (every GGUF family).
inline constexpr TensorNames kGgufTensorNames = {
    "token_embd.weight",
    "output_norm.weight",
    "output.weight",
    "blk.{}.",
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "attn_q.bias",
    "attn_k.bias",
    "attn_v.bias",
    "attn_q_norm.weight",
    "attn_k_norm.weight",
    "post_attention_norm.weight",
    "ffn_norm.weight",
    "ffn_norm.weight",
    "post_ffw_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
};

// transformers' names (every Hugging Face family: *ForCausalLM state dicts).
inline constexpr TensorNames kHfTensorNames = {
    "model.embed_tokens.weight",
    "model.norm.weight",
    "lm_head.weight",
    "model.layers.{}.",
    "input_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.bias",
    "self_attn.q_norm.weight",
    "self_attn.k_norm.weight",
    "post_attention_layernorm.weight",
    "post_attention_layernorm.weight",
    "pre_feedforward_layernorm.weight",
    "post_feedforward_layernorm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
};

}  // namespace kvz
