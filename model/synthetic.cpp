// Synthetic models: the real configuration and tensor sizes of a named model with random weights
// built straight into device memory, for speed work without downloading weights (model/).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/families/family.h"
#include "model/model.h"
#include "runtime/cpu/half.h"

namespace kvz {
namespace {

struct SyntheticSpec {
  const char* name;
  ModelConfig config;
};

// The family's quirks on top of the sizes; the specs below add what is particular to one model.
ModelConfig base(const ModelFamily& f, int layers, int d, int heads, int kv, int hd, int ff,
                 int vocab, int ctx, float rope_base, float eps) {
  ModelConfig c;
  c.n_layers = layers;
  c.d_model = d;
  c.n_heads = heads;
  c.n_kv_heads = kv;
  c.head_dim = hd;
  c.d_ff = ff;
  c.n_vocab = vocab;
  c.max_context = ctx;
  c.rope_base = rope_base;
  c.norm_eps = eps;
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(hd));
  c.rope_style = RopeStyle::kNeox;
  apply_family(f, c);
  c.tied_embeddings = f.hf_tied_default;
  return c;
}

// Hyperparameters from each model's published config.json.
std::vector<SyntheticSpec> specs() {
  std::vector<SyntheticSpec> s;
  ModelConfig llama =
      base(kLlamaFamily, 32, 4096, 32, 8, 128, 14336, 128256, 131072, 500000.0f, 1e-5f);
  llama.rope_scaling = {RopeScaling::Type::kLlama3, 8.0f, 1.0f, 4.0f, 8192};
  s.push_back({"llama3.1-8b", llama});
  s.push_back(
      {"qwen2.5-7b", base(kQwen2Family, 28, 3584, 28, 4, 128, 18944, 152064, 131072, 1e6f, 1e-6f)});
  s.push_back(
      {"qwen3-8b", base(kQwen3Family, 36, 4096, 32, 8, 128, 12288, 151936, 131072, 1e6f, 1e-6f)});
  ModelConfig gemma = base(kGemma3Family, 48, 3840, 16, 8, 256, 15360, 262208, 131072, 1e6f, 1e-6f);
  gemma.rope_scaling = {RopeScaling::Type::kLinear, 8.0f, 1.0f, 4.0f, 8192};
  gemma.sliding_window = 1024;
  gemma.attn_scale = 1.0f / 16.0f;  // query_pre_attn_scalar 256
  s.push_back({"gemma3-12b", gemma});
  return s;
}

// A few MiB of valid random weight blocks of one type, uploaded repeatedly to fill every tensor:
// the numbers only need to be plausible (finite, small), not distinct.
class PatternFiller {
 public:
  PatternFiller(Device& dev, Weights& w, DType type) : dev_(dev), w_(w), type_(type) {
    const DTypeInfo& info = dtype_info(type);
    uint64_t state = 0x9E3779B97F4A7C15ull;
    auto next = [&] {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      return state;
    };
    const size_t n_blocks = (size_t{8} << 20) / static_cast<size_t>(info.block_bytes);
    pattern_.resize(n_blocks * static_cast<size_t>(info.block_bytes));
    if (type == DType::kF16 || type == DType::kBF16 || type == DType::kF32) {
      const size_t esize = type == DType::kF32 ? 4 : 2;
      for (size_t i = 0; i + esize <= pattern_.size(); i += esize) {
        float v = (static_cast<float>(next() >> 40) / static_cast<float>(1 << 24) - 0.5f) * 0.07f;
        if (type == DType::kF32) std::memcpy(&pattern_[i], &v, 4);
        uint16_t h = type == DType::kF16 ? cpu::f32_to_f16(v) : cpu::f32_to_bf16(v);
        if (type != DType::kF32) std::memcpy(&pattern_[i], &h, 2);
      }
    } else if (type == DType::kQ4_K) {
      // block: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of 4-bit quants.
      const uint16_t d = cpu::f32_to_f16(1e-4f), dmin = cpu::f32_to_f16(1e-4f);
      for (size_t b = 0; b < n_blocks; ++b) {
        uint8_t* p = &pattern_[b * 144];
        std::memcpy(p, &d, 2);
        std::memcpy(p + 2, &dmin, 2);
        for (int i = 4; i < 144; ++i) p[i] = static_cast<uint8_t>(next() >> 56);
      }
    } else {
      throw InputError(fmt::format(
          "synthetic weights in {} are not supported (f16, bf16, f32, q4_k)", dtype_name(type)));
    }
  }

  Tensor matrix(int64_t rows, int64_t cols) { return fill(type_, {rows, cols}); }
  Tensor ones(int64_t n) {
    std::vector<float> v(static_cast<size_t>(n), 1.0f);
    return upload_weight(dev_, w_, DType::kF32, {n}, v.data(), v.size() * 4);
  }
  Tensor small(int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = 0.01f * static_cast<float>(static_cast<int>(i % 7) - 3);
    return upload_weight(dev_, w_, DType::kF32, {n}, v.data(), v.size() * 4);
  }

 private:
  Tensor fill(DType type, std::initializer_list<int64_t> shape) {
    Tensor probe(BufferView{0, 0, SIZE_MAX, nullptr}, type, shape);
    const size_t n = probe.nbytes();
    w_.storage.push_back(dev_.alloc(n));
    const BufferView& all = w_.storage.back().view();
    for (size_t at = 0; at < n; at += pattern_.size()) {
      BufferView part = all;
      part.offset_bytes += at;
      part.size_bytes = std::min(pattern_.size(), n - at);
      if (part.host) part.host += at;
      dev_.upload(part, pattern_.data(), part.size_bytes);
    }
    w_.bytes += n;
    return w_.storage.back().tensor(type, shape);
  }

  Device& dev_;
  Weights& w_;
  DType type_;
  std::vector<uint8_t> pattern_;
};

}  // namespace

std::vector<std::string> synthetic_model_names() {
  std::vector<std::string> names;
  for (const auto& s : specs()) names.emplace_back(s.name);
  return names;
}

std::unique_ptr<Model> make_synthetic_model(Device& dev, const std::string& name, DType weight_type,
                                            const LoadProgress& progress, int n_layers) {
  const auto all = specs();
  auto it =
      std::find_if(all.begin(), all.end(), [&](const SyntheticSpec& s) { return name == s.name; });
  if (it == all.end())
    throw InputError(fmt::format("unknown synthetic model '{}' (known: {})", name,
                                 fmt::join(synthetic_model_names(), ", ")));
  if (weight_type != DType::kF16 && weight_type != DType::kBF16 && weight_type != DType::kF32 &&
      weight_type != DType::kQ4_K)
    throw InputError(fmt::format(
        "synthetic weights in {} are not supported (f16, bf16, f32, q4_k)",
        weight_type < DType::kSentinel ? dtype_name(weight_type) : std::string_view("that type")));
  ModelConfig c = it->config;
  c.name = fmt::format("synthetic-{}-{}", name, dtype_name(weight_type));
  if (n_layers != 0) {
    if (n_layers < 1 || n_layers > c.n_layers)
      throw InputError(fmt::format("synthetic model '{}' has 1 to {} layers, not {}", name,
                                   c.n_layers, n_layers));
    c.n_layers = n_layers;
    if (!c.layer_sliding.empty()) c.layer_sliding.resize(static_cast<size_t>(n_layers));
    c.name += fmt::format("-L{}", n_layers);
  }
  c.validate(c.name);
  Weights w;
  PatternFiller f(dev, w, weight_type);
  const int64_t d = c.d_model, q_out = int64_t{c.n_heads} * c.head_dim,
                kv_out = int64_t{c.n_kv_heads} * c.head_dim;
  w.tok_embd = f.matrix(c.n_vocab, d);
  w.output_norm = f.ones(d);
  w.output = c.tied_embeddings ? w.tok_embd : f.matrix(c.n_vocab, d);
  for (int il = 0; il < c.n_layers; ++il) {
    LayerWeights l;
    l.attn_norm = f.ones(d);
    l.wq = f.matrix(q_out, d);
    l.wk = f.matrix(kv_out, d);
    l.wv = f.matrix(kv_out, d);
    l.wo = f.matrix(d, q_out);
    if (c.qkv_bias) l.bq = f.small(q_out), l.bk = f.small(kv_out), l.bv = f.small(kv_out);
    if (c.qk_norm) l.q_norm = f.ones(c.head_dim), l.k_norm = f.ones(c.head_dim);
    if (c.post_norms) l.post_attn_norm = f.ones(d), l.post_ffn_norm = f.ones(d);
    l.ffn_norm = f.ones(d);
    l.w_gate = f.matrix(c.d_ff, d);
    l.w_up = f.matrix(c.d_ff, d);
    l.w_down = f.matrix(d, c.d_ff);
    w.layers.push_back(std::move(l));
    if (progress) progress(static_cast<size_t>(il + 1), static_cast<size_t>(c.n_layers));
  }
  upload_rope_tables(dev, w, c, {});
  auto tok = std::make_unique<Tokenizer>(Tokenizer::synthetic(c.n_vocab));
  std::string id = c.name;
  return std::make_unique<Model>(dev, std::move(c), std::move(w), std::move(tok), std::move(id));
}

}  // namespace kvz
