// The LLaMA family (model/families): LLaMA 2 and 3 (with llama3 RoPE scaling, read from the file),
// SmolLM and the llama2.c checkpoints; the plain pre-norm block with SiLU, no biases or q/k norms.
#include "model/families/family.h"

namespace kvz {

const ModelFamily kLlamaFamily = {
    .name = "llama",
    .gguf_arch = "llama",
    .hf_model_type = "llama",
    // llama.cpp's converters permute q/k for adjacent-pair rotation; llama2.c rotates pairs too.
    .gguf_rope_style = RopeStyle::kNormal,
};

}  // namespace kvz
