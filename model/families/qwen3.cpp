// The Qwen3 family (model/families): the LLaMA block with per-head q/k RMSNorm and NeoX RoPE;
// ChatML template whose answer opens after an empty <think> block (thinking off).
#include "model/families/family.h"

namespace kvz {

const ModelFamily kQwen3Family = {
    .name = "qwen3",
    .gguf_arch = "qwen3",
    .hf_model_type = "qwen3",
    .qk_norm = true,
    .chat_think_block = true,
};

}  // namespace kvz
