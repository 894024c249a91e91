// The Qwen2 family (model/families): Qwen2 and Qwen2.5; the LLaMA block with q/k/v biases and
// NeoX RoPE; ChatML template.
#include "model/families/family.h"

namespace kvz {

const ModelFamily kQwen2Family = {
    .name = "qwen2",
    .gguf_arch = "qwen2",
    .hf_model_type = "qwen2",
    .qkv_bias = true,
};

}  // namespace kvz
