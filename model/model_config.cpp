// ModelConfig validation (model/).
#include "model/model_config.h"

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
  if (n_heads % n_kv_heads)
    bad(fmt::format("{} heads not a multiple of {} KV heads", n_heads, n_kv_heads));
  if (head_dim % 2 || head_dim > 256)
    bad(fmt::format("head_dim {} unsupported (even, <= 256)", head_dim));
  if (rot_dims % 2 || rot_dims > head_dim) bad(fmt::format("rope dims {}", rot_dims));
  if (!layer_sliding.empty() && static_cast<int>(layer_sliding.size()) != n_layers)
    bad("sliding-layer pattern length");
}

}  // namespace kvz
