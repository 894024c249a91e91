// The Gemma 3 family (model/families), text models: q/k norms, norms after attention and the MLP,
// norm weights stored as w of x * (1 + w) by Hugging Face, GELU (tanh), embeddings scaled by
// sqrt(d_model), tied embeddings, five sliding-window layers (RoPE base 1e4) then one global
// layer, attention scale from query_pre_attn_scalar, optional logit soft-caps.
#include "model/families/family.h"

namespace kvz {

const ModelFamily kGemma3Family = {
    .name = "gemma3",
    .gguf_arch = "gemma3",
    .hf_model_type = "gemma3_text",
    .qk_norm = true,
    .post_norms = true,
    .act = Activation::kGeluTanh,
    .hf_act_key = "hidden_activation",
    .hf_act = "gelu_pytorch_tanh",
    .hf_act_optional = false,
    .hf_norm_plus_one = true,
    .embedding_scale_sqrt_d = true,
    .hf_tied_default = true,
    .sliding_pattern = 6,
    .local_rope_base = 10000.0f,
    .gguf_default_window = 512,
    .query_pre_attn_scalar = true,
    .hf_softcaps = true,
};

}  // namespace kvz
