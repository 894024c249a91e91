// The registry of model families: lookup by name, GGUF architecture and Hugging Face model_type,
// and the family fields every loader applies (model/families).
#include <fmt/format.h>

#include <array>
#include <cmath>

#include "model/families/family.h"
#include "runtime/error.h"

namespace kvz {
namespace {

// A new family: its file in this folder, one line here (docs/ARCHITECTURE.md).
constexpr std::array<const ModelFamily*, 4> kFamilies = {&kLlamaFamily, &kQwen2Family,
                                                         &kQwen3Family, &kGemma3Family};

std::string supported(const char* ModelFamily::*key) {
  std::string out;
  for (const ModelFamily* f : kFamilies) out += (out.empty() ? "" : ", ") + std::string(f->*key);
  return out;
}

}  // namespace

std::span<const ModelFamily* const> model_families() { return kFamilies; }

const ModelFamily* find_family(std::string_view name) {
  for (const ModelFamily* f : kFamilies)
    if (name == f->name) return f;
  return nullptr;
}

const ModelFamily& family_for_gguf(std::string_view gguf_arch, const std::string& source) {
  for (const ModelFamily* f : kFamilies)
    if (gguf_arch == f->gguf_arch) return *f;
  throw FormatError(fmt::format("{}: unsupported architecture '{}' (supported: {})", source,
                                gguf_arch, supported(&ModelFamily::gguf_arch)));
}

const ModelFamily& family_for_hf(std::string_view model_type, const std::string& source) {
  for (const ModelFamily* f : kFamilies)
    if (model_type == f->hf_model_type) return *f;
  throw FormatError(fmt::format("{}: unsupported model_type '{}' (supported: {})", source,
                                model_type, supported(&ModelFamily::hf_model_type)));
}

void apply_family(const ModelFamily& f, ModelConfig& c) {
  c.arch_name = f.name;
  c.qkv_bias = f.qkv_bias;
  c.qk_norm = f.qk_norm;
  c.post_norms = f.post_norms;
  c.act = f.act;
  if (f.embedding_scale_sqrt_d) c.embedding_scale = std::sqrt(static_cast<float>(c.d_model));
  c.rope_base_local = f.sliding_pattern > 0 ? f.local_rope_base : c.rope_base;
  c.layer_sliding.clear();
  if (f.sliding_pattern > 0 && c.n_layers > 0 && c.n_layers <= ModelConfig::kMaxLayers) {
    c.layer_sliding.resize(static_cast<size_t>(c.n_layers));
    for (int il = 0; il < c.n_layers; ++il) c.layer_sliding[il] = (il + 1) % f.sliding_pattern != 0;
  }
}

}  // namespace kvz
