// Scores: one importance value per cached context KV pair (kvzip/). KVzip scores are the maximum
// attention probability a pair receives while the model reconstructs its context (ALGORITHMS.md
// 1.3); head-level scores are one value per (layer, KV head) (ALGORITHMS.md 2.6).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvz {

// [n_layers][n_kv_heads][n_ctx] f32 over the context rows [n_prefix, n_prefix + n_ctx).
struct Scores {
  int n_layers = 0, n_kv_heads = 0;
  int64_t n_ctx = 0;
  std::vector<float> data;

  Scores() = default;
  Scores(int layers, int heads, int64_t ctx)
      : n_layers(layers),
        n_kv_heads(heads),
        n_ctx(ctx),
        data(static_cast<size_t>(layers) * static_cast<size_t>(heads) * static_cast<size_t>(ctx),
             0.0f) {}
  bool empty() const { return data.empty(); }
  float& at(int il, int ih, int64_t j) { return data[index(il, ih, j)]; }
  float at(int il, int ih, int64_t j) const { return data[index(il, ih, j)]; }
  size_t index(int il, int ih, int64_t j) const {
    return (static_cast<size_t>(il) * static_cast<size_t>(n_kv_heads) + static_cast<size_t>(ih)) *
               static_cast<size_t>(n_ctx) +
           static_cast<size_t>(j);
  }
};

// Context-independent head-level scores: S[l, h] = max over positions of a pair-level scoring of
// one long sample (KVzip 4.2). Saved once per model, reused for every context.
struct HeadScores {
  int n_layers = 0, n_kv_heads = 0;
  std::string model_identity;
  std::vector<float> data;  // [n_layers][n_kv_heads]

  static HeadScores from(const Scores& s, std::string model_identity);
  float at(int il, int ih) const { return data[static_cast<size_t>(il * n_kv_heads + ih)]; }
  // Small JSON file. load throws FormatError on a malformed file, InputError if unreadable.
  void save(const std::string& path) const;
  static HeadScores load(const std::string& path);
};

}  // namespace kvz
