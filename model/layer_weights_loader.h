// The per-layer weight mapping shared by the file-format loaders (model/): which tensor name fills
// which LayerWeights field, for GGUF (llama.cpp names) and Hugging Face safetensors. One function
// walks the fields for both; a format contributes only its name table and its tensor loader.
#pragma once

#include <fmt/format.h>

#include <string>

#include "model/model.h"

namespace kvz {

struct LayerTensorNames {
  const char* prefix;  // format string of the layer index, e.g. "blk.{}."
  const char *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *q_norm, *k_norm;
  const char* post_attn_norm;       // Gemma-style post norms (ModelConfig::post_norms) only
  const char* ffn_norm;             // pre-FFN norm without post norms
  const char* ffn_norm_post_norms;  // pre-FFN norm with post norms
  const char *post_ffn_norm, *w_gate, *w_up, *w_down;
};

inline constexpr LayerTensorNames kGgufLayerNames = {
    "blk.{}.",         "attn_norm.weight",   "attn_q.weight",        "attn_k.weight",
    "attn_v.weight",   "attn_output.weight", "attn_q.bias",          "attn_k.bias",
    "attn_v.bias",     "attn_q_norm.weight", "attn_k_norm.weight",   "post_attention_norm.weight",
    "ffn_norm.weight", "ffn_norm.weight",    "post_ffw_norm.weight", "ffn_gate.weight",
    "ffn_up.weight",   "ffn_down.weight",
};

inline constexpr LayerTensorNames kHfLayerNames = {
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

// Loads layer il through `ld`, which provides matrix(name, rows, cols), vec(name, n, optional)
// (biases) and norm(name, n) (norm weights, where a format may apply its norm convention).
template <class Loader>
LayerWeights load_layer_weights(Loader& ld, const ModelConfig& c, int il,
                                const LayerTensorNames& nm) {
  const int64_t d = c.d_model, hd = c.head_dim, q_out = int64_t{c.n_heads} * hd,
                kv_out = int64_t{c.n_kv_heads} * hd;
  const std::string prefix = fmt::format(fmt::runtime(nm.prefix), il);
  auto n = [&](const char* s) { return prefix + s; };
  LayerWeights l;
  l.attn_norm = ld.norm(n(nm.attn_norm), d);
  l.wq = ld.matrix(n(nm.wq), q_out, d);
  l.wk = ld.matrix(n(nm.wk), kv_out, d);
  l.wv = ld.matrix(n(nm.wv), kv_out, d);
  l.wo = ld.matrix(n(nm.wo), d, q_out);
  l.bq = ld.vec(n(nm.bq), q_out, !c.qkv_bias);
  l.bk = ld.vec(n(nm.bk), kv_out, !c.qkv_bias);
  l.bv = ld.vec(n(nm.bv), kv_out, !c.qkv_bias);
  if (c.qk_norm) {
    l.q_norm = ld.norm(n(nm.q_norm), hd);
    l.k_norm = ld.norm(n(nm.k_norm), hd);
  }
  if (c.post_norms) {
    l.post_attn_norm = ld.norm(n(nm.post_attn_norm), d);
    l.ffn_norm = ld.norm(n(nm.ffn_norm_post_norms), d);
    l.post_ffn_norm = ld.norm(n(nm.post_ffn_norm), d);
  } else {
    l.ffn_norm = ld.norm(n(nm.ffn_norm), d);
  }
  l.w_gate = ld.matrix(n(nm.w_gate), c.d_ff, d);
  l.w_up = ld.matrix(n(nm.w_up), c.d_ff, d);
  l.w_down = ld.matrix(n(nm.w_down), d, c.d_ff);
  return l;
}

}  // namespace kvz
