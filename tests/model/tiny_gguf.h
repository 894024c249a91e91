// A complete, loadable tiny LLaMA GGUF built in memory (tests/model/): 2 layers, d_model 16, f32
// weights, an 8-token byte-level vocabulary. Options break one thing at a time for the hardening
// tests; the fuzzers' GGUF model seed is this file.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "tests/model/gguf_writer.h"

namespace kvz::test {

struct TinyGguf {
  std::string arch = "llama";  // general.architecture and the prefix of its keys
  uint32_t block_count = 2;    // metadata layer count
  int n_layers_stored = 2;     // layers whose tensors are written
  std::optional<uint32_t> context_length = 128;
  std::optional<uint32_t> rope_dims;
  std::optional<float> rope_freq_base = 10000.0f;
  float norm_eps = 1e-5f;
  float norm_value = 1.0f;     // every element of blk.0.attn_norm.weight
  float weight_scale = 0.05f;  // weights are weight_scale * sin(i + tensor index)
};

inline std::vector<uint8_t> f32_bytes(size_t n, float scale, int salt) {
  std::vector<uint8_t> out(n * 4);
  for (size_t i = 0; i < n; ++i) {
    const float v = scale * std::sin(static_cast<float>(i) + static_cast<float>(salt));
    std::memcpy(&out[i * 4], &v, 4);
  }
  return out;
}

inline std::vector<uint8_t> const_bytes(size_t n, float v) {
  std::vector<uint8_t> out(n * 4);
  for (size_t i = 0; i < n; ++i) std::memcpy(&out[i * 4], &v, 4);
  return out;
}

inline std::vector<uint8_t> tiny_gguf(const TinyGguf& o = {}) {
  constexpr int64_t d = 16, H = 2, kv = 2, hd = 8, ff = 32, V = 8;
  constexpr uint32_t kU32 = 4, kF32 = 6, kI32 = 5, kF32Type = 0;
  GgufWriter w;
  w.kv_str("general.architecture", o.arch);
  auto key = [&](const char* k) { return o.arch + "." + k; };
  w.kv_str("general.name", "tiny");
  w.kv<uint32_t>(key("block_count"), kU32, o.block_count);
  w.kv<uint32_t>(key("embedding_length"), kU32, d);
  w.kv<uint32_t>(key("feed_forward_length"), kU32, ff);
  w.kv<uint32_t>(key("attention.head_count"), kU32, H);
  w.kv<uint32_t>(key("attention.head_count_kv"), kU32, kv);
  if (o.context_length) w.kv<uint32_t>(key("context_length"), kU32, *o.context_length);
  if (o.rope_dims) w.kv<uint32_t>(key("rope.dimension_count"), kU32, *o.rope_dims);
  if (o.rope_freq_base) w.kv<float>(key("rope.freq_base"), kF32, *o.rope_freq_base);
  w.kv<float>(key("attention.layer_norm_rms_epsilon"), kF32, o.norm_eps);
  w.kv_str("tokenizer.ggml.model", "gpt2");
  w.kv_arr_str("tokenizer.ggml.tokens", {"a", "b", "c", "d", "e", "ab", "<s>", "</s>"});
  w.kv_arr<int32_t>("tokenizer.ggml.token_type", kI32, {1, 1, 1, 1, 1, 1, 3, 3});
  w.kv_arr_str("tokenizer.ggml.merges", {"a b"});
  w.kv<uint32_t>("tokenizer.ggml.bos_token_id", kU32, 6);
  w.kv<uint32_t>("tokenizer.ggml.eos_token_id", kU32, 7);
  int salt = 0;
  auto mat = [&](const std::string& name, int64_t rows, int64_t cols) {
    w.tensor(name, kF32Type, {cols, rows},
             f32_bytes(static_cast<size_t>(rows * cols), o.weight_scale, ++salt));
  };
  auto vec = [&](const std::string& name, int64_t n, float v) {
    w.tensor(name, kF32Type, {n}, const_bytes(static_cast<size_t>(n), v));
  };
  mat("token_embd.weight", V, d);
  vec("output_norm.weight", d, 1.0f);
  for (int il = 0; il < o.n_layers_stored; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    vec(p + "attn_norm.weight", d, il == 0 ? o.norm_value : 1.0f);
    mat(p + "attn_q.weight", H * hd, d);
    mat(p + "attn_k.weight", kv * hd, d);
    mat(p + "attn_v.weight", kv * hd, d);
    mat(p + "attn_output.weight", d, H * hd);
    vec(p + "ffn_norm.weight", d, 1.0f);
    mat(p + "ffn_gate.weight", ff, d);
    mat(p + "ffn_up.weight", ff, d);
    mat(p + "ffn_down.weight", d, ff);
  }
  return w.finish();
}

}  // namespace kvz::test
