// GGUF model loading: hyperparameters under the family's keys, its quirks and tensor names
// (model/families), upload (model/).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "model/families/family.h"
#include "model/gguf_reader.h"
#include "model/identity.h"
#include "model/layer_weights_loader.h"
#include "model/model.h"
#include "runtime/cpu/dequant.h"
#include "runtime/ops/matmul.h"

namespace kvz {
namespace {

// The family's keys are "<gguf_arch>.<key>"; its quirks come from model/families.
ModelConfig read_config(const GgufReader& g, const ModelFamily& f) {
  ModelConfig c;
  const std::string a = f.gguf_arch;
  auto key = [&](const char* k) { return a + "." + k; };
  c.name = g.opt_str("general.name").value_or(std::filesystem::path(g.name()).stem().string());
  c.n_layers = static_cast<int>(g.get_u32(key("block_count")));
  c.d_model = static_cast<int>(g.get_u32(key("embedding_length")));
  c.d_ff = static_cast<int>(g.get_u32(key("feed_forward_length")));
  c.n_heads = static_cast<int>(g.get_u32(key("attention.head_count")));
  c.n_kv_heads = static_cast<int>(g.opt_u32(key("attention.head_count_kv")).value_or(c.n_heads));
  c.head_dim = static_cast<int>(
      g.opt_u32(key("attention.key_length")).value_or(c.n_heads ? c.d_model / c.n_heads : 0));
  c.max_context = static_cast<int>(g.opt_u32(key("context_length")).value_or(4096));
  c.norm_eps = g.opt_f32(key("attention.layer_norm_rms_epsilon")).value_or(1e-5f);
  c.rope_base = g.opt_f32(key("rope.freq_base")).value_or(10000.0f);
  c.rot_dims = static_cast<int>(g.opt_u32(key("rope.dimension_count")).value_or(c.head_dim));
  c.rope_style = f.gguf_rope_style;
  apply_family(f, c);
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  if (auto type = g.opt_str(key("rope.scaling.type"))) {
    float factor = g.opt_f32(key("rope.scaling.factor")).value_or(1.0f);
    if (*type == "linear" && factor != 1.0f) {
      c.rope_scaling.type = RopeScaling::Type::kLinear;
      c.rope_scaling.factor = factor;
    } else if (*type == "yarn") {
      c.rope_scaling.type = RopeScaling::Type::kYarn;
      c.rope_scaling.factor = factor;
      c.rope_scaling.original_context =
          static_cast<int>(g.opt_u32(key("rope.scaling.original_context_length")).value_or(32768));
    }
  }
  if (f.sliding_pattern > 0)
    c.sliding_window = static_cast<int>(
        g.opt_u32(key("attention.sliding_window")).value_or(f.gguf_default_window));
  if (f.query_pre_attn_scalar)
    c.attn_scale = 1.0f / std::sqrt(g.opt_f32(key("attention.query_pre_attn_scalar"))
                                        .value_or(static_cast<float>(c.head_dim)));
  return c;  // validated by the caller once n_vocab is known
}

class TensorLoader {
 public:
  // dry: check presence, shape and finite norms of every tensor asked for, upload nothing
  // (a first pass, so that a bad file is refused before any device memory is allocated).
  TensorLoader(Device& dev, const GgufReader& g, Weights& w, const LoadProgress& progress,
               bool dry = false)
      : dev_(dev), g_(g), w_(w), progress_(progress), dry_(dry) {
    for (const auto& t : g.tensors()) total_ += t.n_bytes;
  }

  // A matrix [rows, cols] (GGUF shape {cols, rows}) in its stored type.
  Tensor matrix(const std::string& name, int64_t rows, int64_t cols, bool optional = false) {
    const GgufTensor* t = g_.find_tensor(name);
    if (!t) {
      if (optional) return {};
      throw FormatError(fmt::format("{}: missing tensor '{}'", g_.name(), name));
    }
    expect_shape(*t, {cols, rows});
    if (dry_) return {};
    return upload(*t, {rows, cols});
  }
  // A vector [n] converted to f32.
  // GGUF norm weights are stored as the model applies them (no format-specific convention).
  Tensor norm(const std::string& name, int64_t n) { return vec(name, n); }
  Tensor vec(const std::string& name, int64_t n, bool optional = false) {
    const GgufTensor* t = g_.find_tensor(name);
    if (!t) {
      if (optional) return {};
      throw FormatError(fmt::format("{}: missing tensor '{}'", g_.name(), name));
    }
    expect_shape(*t, {n});
    std::vector<float> f(static_cast<size_t>(n));
    cpu::dequantize_row(t->dtype, t->data, f.data(), n);
    check_finite(f.data(), n, g_.name(), name);
    if (dry_) return {};
    done(t->n_bytes);
    return upload_weight(dev_, w_, DType::kF32, {n}, f.data(), f.size() * 4);
  }
  std::vector<float> host_vec(const std::string& name) {
    const GgufTensor* t = g_.find_tensor(name);
    if (!t) return {};
    std::vector<float> f(static_cast<size_t>(t->n_elems()));
    cpu::dequantize_row(t->dtype, t->data, f.data(), t->n_elems());
    check_finite(f.data(), t->n_elems(), g_.name(), name);
    for (float x : f)
      if (x <= 0) throw FormatError(fmt::format("{}: tensor '{}' holds {}", g_.name(), name, x));
    return f;
  }

 private:
  void expect_shape(const GgufTensor& t, std::vector<int64_t> want) {
    if (t.shape != want)
      throw FormatError(fmt::format("{}: tensor '{}' has shape [{}], expected [{}]", g_.name(),
                                    t.name, fmt::join(t.shape, ", "), fmt::join(want, ", ")));
  }
  Tensor upload(const GgufTensor& t, std::initializer_list<int64_t> shape) {
    Tensor out = upload_weight(dev_, w_, t.dtype, shape, t.data, t.n_bytes);
    done(t.n_bytes);
    return out;
  }
  void done(size_t n) {
    loaded_ += n;
    if (progress_) progress_(loaded_, total_);
  }

  Device& dev_;
  const GgufReader& g_;
  Weights& w_;
  const LoadProgress& progress_;
  bool dry_;
  size_t total_ = 0, loaded_ = 0;
};

// Every weight of the model through `ld`, by the family's names; sets c.tied_embeddings.
void load_tensors(TensorLoader& ld, const TensorNames& nm, ModelConfig& c, Weights& w) {
  const int64_t d = c.d_model;
  w.tok_embd = ld.matrix(nm.tok_embd, c.n_vocab, d);
  w.output_norm = ld.vec(nm.output_norm, d);
  w.output = ld.matrix(nm.output, c.n_vocab, d, /*optional=*/true);
  c.tied_embeddings = !w.output.defined();
  if (c.tied_embeddings) w.output = w.tok_embd;
  for (int il = 0; il < c.n_layers; ++il) w.layers.push_back(load_layer_weights(ld, c, il, nm));
}

std::string identity_of(const GgufReader& g, const ModelConfig& c, const Tokenizer& tok,
                        const std::string& path, const std::string& id_cache) {
  std::vector<TensorSample> samples;
  for (const auto& t : g.tensors()) samples.push_back({t.name, t.n_bytes, t.data});
  return model_identity(c, tensor_hash(samples, {path}, id_cache), tok);
}

}  // namespace

std::unique_ptr<Model> load_gguf_model(Device& dev, const std::string& path,
                                       const LoadProgress& progress, const std::string& id_cache) {
  GgufReader g(path);
  const ModelFamily& f = family_for_gguf(g.get_str("general.architecture"), g.name());
  const TensorNames& nm = *f.gguf_tensors;
  ModelConfig c = read_config(g, f);
  auto tok = std::make_unique<Tokenizer>(Tokenizer::from_gguf(g));
  c.n_vocab = tok->n_vocab();
  c.validate(g.name());
  std::vector<std::string_view> names;
  for (const GgufTensor& t : g.tensors()) names.push_back(t.name);
  check_layer_count(names, layer_stem(nm), c.n_layers, g.name());
  {
    Weights none;
    ModelConfig scratch = c;
    TensorLoader check(dev, g, none, {}, /*dry=*/true);
    load_tensors(check, nm, scratch, none);
  }
  Weights w;
  TensorLoader ld(dev, g, w, progress);
  load_tensors(ld, nm, c, w);
  upload_rope_tables(dev, w, c, ld.host_vec("rope_freqs.weight"));
  std::string id = identity_of(g, c, *tok, path, id_cache);
  return std::make_unique<Model>(dev, std::move(c), std::move(w), std::move(tok), std::move(id));
}

}  // namespace kvz
