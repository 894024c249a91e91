// The per-layer weight mapping shared by the file-format loaders (model/): one function walks the
// LayerWeights fields for every format; a format contributes its tensor loader, the family its
// name table (model/families/tensor_names.h).
#pragma once

#include <fmt/format.h>

#include <string>

#include "model/families/tensor_names.h"
#include "model/model.h"

namespace kvz {

// Loads layer il through `ld`, which provides matrix(name, rows, cols), vec(name, n, optional)
// (biases) and norm(name, n) (norm weights, where a format may apply its norm convention).
template <class Loader>
LayerWeights load_layer_weights(Loader& ld, const ModelConfig& c, int il, const TensorNames& nm) {
  const int64_t d = c.d_model, hd = c.head_dim, q_out = int64_t{c.n_heads} * hd,
                kv_out = int64_t{c.n_kv_heads} * hd;
  const std::string prefix = fmt::format(fmt::runtime(nm.layer_prefix), il);
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
