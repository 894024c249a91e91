// ModelConfig validation (model/).
#include "model/model_config.h"

#include <cmath>

#include "runtime/error.h"

namespace kvz {

void ModelConfig::validate(const std::string& source) const {
  auto bad = [&](const std::string& what) {
    throw FormatError(fmt::format("{}: invalid model config: {}", source, what));
  };
  if (n_layers <= 0 || d_model <= 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 ||
      d_ff <= 0 || n_vocab <= 0)
    bad(
        fmt::format("non-positive size (layers {}, d_model {}, heads {}/{}, head_dim {}, d_ff {}, "
                    "vocab {})",
                    n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, n_vocab));
  // Bounds far above any real model, so that no size product below overflows 64 bits and a
  // corrupt header is refused before anything is allocated.
  struct Bound {
    const char* name;
    int value, max;
  };
  for (const Bound& b :
       {Bound{"layers", n_layers, kMaxLayers}, Bound{"d_model", d_model, kMaxDim},
        Bound{"heads", n_heads, kMaxHeads}, Bound{"KV heads", n_kv_heads, kMaxHeads},
        Bound{"d_ff", d_ff, kMaxFf}, Bound{"vocab", n_vocab, kMaxVocab}})
    if (b.value > b.max)
      bad(fmt::format("{} {} is above the supported {}", b.name, b.value, b.max));
  if (n_heads % n_kv_heads)
    bad(fmt::format("{} heads not a multiple of {} KV heads", n_heads, n_kv_heads));
  if (head_dim % 2 || head_dim > 256)
    bad(fmt::format("head_dim {} unsupported (even, <= 256)", head_dim));
  if (rot_dims < 0 || rot_dims % 2 || rot_dims > head_dim)
    bad(fmt::format("rope dims {} (even, at most head_dim {})", rot_dims, head_dim));
  if (max_context <= 0 || max_context > kMaxContext)
    bad(fmt::format("context length {} (1 .. {})", max_context, kMaxContext));
  if (!layer_sliding.empty() && static_cast<int>(layer_sliding.size()) != n_layers)
    bad("sliding-layer pattern length");
  if (sliding_window < 0) bad(fmt::format("sliding window {}", sliding_window));
  auto positive = [&](const char* what, float v) {
    if (!std::isfinite(v) || v <= 0) bad(fmt::format("{} {} (finite, > 0)", what, v));
  };
  positive("norm epsilon", norm_eps);
  positive("RoPE base", rope_base);
  positive("local RoPE base", rope_base_local);
  positive("attention scale", attn_scale);
  positive("embedding scale", embedding_scale);
  positive("RoPE scaling factor", rope_scaling.factor);
  if (norm_eps >= 1) bad(fmt::format("norm epsilon {} (below 1)", norm_eps));
  if (!std::isfinite(attn_softcap) || attn_softcap < 0 || !std::isfinite(final_softcap) ||
      final_softcap < 0)
    bad(fmt::format("soft-caps {} / {} (finite, >= 0)", attn_softcap, final_softcap));
  if (rope_scaling.type != RopeScaling::Type::kNone &&
      (rope_scaling.original_context <= 0 || rope_scaling.original_context > kMaxContext ||
       !std::isfinite(rope_scaling.low_freq_factor) ||
       !std::isfinite(rope_scaling.high_freq_factor)))
    bad(fmt::format("RoPE scaling (original context {}, low/high frequency factors {} / {})",
                    rope_scaling.original_context, rope_scaling.low_freq_factor,
                    rope_scaling.high_freq_factor));
}

}  // namespace kvz
