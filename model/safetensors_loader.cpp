// Hugging Face model folders (config.json + *.safetensors + tokenizer.json): hyperparameters, the
// family's quirks and tensor names (model/families, by model_type), upload (model/).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/families/family.h"
#include "model/identity.h"
#include "model/layer_weights_loader.h"
#include "model/mapped_file.h"
#include "model/model.h"
#include "model/safetensors_reader.h"
#include "runtime/cpu/dequant.h"

namespace kvz {
namespace {

using nlohmann::json;

// Typed access to config.json; a missing or mistyped key throws FormatError naming file and key.
class HfConfig {
 public:
  explicit HfConfig(const std::string& path) : file_(path) {
    const MappedFile f(path);  // a regular file only: a named pipe must not block the load
    try {
      j_ = json::parse(f.bytes().begin(), f.bytes().end());
    } catch (const json::exception& e) {
      throw FormatError(fmt::format("{}: invalid JSON: {}", path, e.what()));
    }
    if (!j_.is_object()) throw FormatError(fmt::format("{}: not a JSON object", path));
  }
  const std::string& file() const { return file_; }
  bool has(const char* k) const { return j_.contains(k) && !j_[k].is_null(); }
  const json& raw(const char* k) const { return j_[k]; }
  std::string str(const char* k) const {
    return get(k, &json::is_string, "a string").get<std::string>();
  }
  // Range-checked: 2^33 + 2 must not read as 2.
  int integer(const char* k) const {
    const json& v = get(k, &json::is_number_integer, "an integer");
    if (v.is_number_unsigned() ? v.get<uint64_t>() > INT32_MAX
                               : v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX)
      throw error(fmt::format("key '{}' = {} is out of range", k, v.dump()));
    return v.get<int>();
  }
  int integer(const char* k, int def) const { return has(k) ? integer(k) : def; }
  float number(const char* k) const { return get(k, &json::is_number, "a number").get<float>(); }
  float number(const char* k, float def) const { return has(k) ? number(k) : def; }
  bool boolean(const char* k, bool def) const {
    return has(k) ? get(k, &json::is_boolean, "a boolean").get<bool>() : def;
  }
  FormatError error(const std::string& what) const {
    return FormatError(fmt::format("{}: {}", file_, what));
  }

 private:
  const json& get(const char* k, bool (json::*is)() const noexcept, const char* what) const {
    if (!has(k)) throw error(fmt::format("missing key '{}'", k));
    if (!(j_[k].*is)()) throw error(fmt::format("key '{}' is not {}", k, what));
    return j_[k];
  }
  std::string file_;
  json j_;
};

// One rope parameter set: the legacy rope_scaling object or a transformers 5 rope_parameters one.
RopeScaling rope_scaling_of(const HfConfig& h, const json& r) {
  RopeScaling s;
  if (!r.is_object()) return s;
  const std::string type = r.value("rope_type", r.value("type", "default"));
  const float factor = r.value("factor", 1.0f);
  if (type == "default") return s;
  if (type == "linear") {
    s.type = RopeScaling::Type::kLinear;
  } else if (type == "llama3") {
    s.type = RopeScaling::Type::kLlama3;
    s.low_freq_factor = r.value("low_freq_factor", 1.0f);
    s.high_freq_factor = r.value("high_freq_factor", 4.0f);
    s.original_context = r.value("original_max_position_embeddings", 8192);
  } else if (type == "yarn") {
    s.type = RopeScaling::Type::kYarn;
    s.original_context = r.value("original_max_position_embeddings", 32768);
  } else {
    throw h.error(
        fmt::format("rope type '{}' is not supported (default, linear, llama3, yarn)", type));
  }
  s.factor = factor;
  return s;
}

// Families with sliding-window layers keep a second parameter set for them.
void read_rope(const HfConfig& h, const ModelFamily& f, ModelConfig& c) {
  const json none;
  const json& params = h.has("rope_parameters") ? h.raw("rope_parameters") : none;
  const json& legacy = h.has("rope_scaling") ? h.raw("rope_scaling") : none;
  if (f.sliding_pattern > 0) {
    const json& full =
        params.is_object() && params.contains("full_attention") ? params["full_attention"] : legacy;
    const json& local = params.is_object() && params.contains("sliding_attention")
                            ? params["sliding_attention"]
                            : none;
    c.rope_base = full.is_object() && full.contains("rope_theta") ? full["rope_theta"].get<float>()
                                                                  : h.number("rope_theta", 1e6f);
    c.rope_base_local = local.is_object() && local.contains("rope_theta")
                            ? local["rope_theta"].get<float>()
                            : h.number("rope_local_base_freq", f.local_rope_base);
    c.rope_scaling = rope_scaling_of(h, full);
    return;
  }
  const json& r = params.is_object() ? params : legacy;
  c.rope_base = r.is_object() && r.contains("rope_theta") ? r["rope_theta"].get<float>()
                                                          : h.number("rope_theta", 10000.0f);
  c.rope_base_local = c.rope_base;
  c.rope_scaling = rope_scaling_of(h, r);
}

// The sliding-window layers: the window, and which layers (layer_types, else a pattern).
void read_sliding(const HfConfig& h, const ModelFamily& f, ModelConfig& c) {
  c.sliding_window = h.integer("sliding_window");
  if (c.n_layers <= 0 || c.n_layers > ModelConfig::kMaxLayers) return;  // validate() names it
  c.layer_sliding.assign(static_cast<size_t>(c.n_layers), false);
  if (h.has("layer_types")) {
    const json& lt = h.raw("layer_types");
    if (!lt.is_array() || static_cast<int>(lt.size()) != c.n_layers)
      throw h.error(fmt::format("layer_types must list {} layers", c.n_layers));
    for (int il = 0; il < c.n_layers; ++il) c.layer_sliding[il] = lt[il] == "sliding_attention";
  } else {
    const int pattern = h.integer("sliding_window_pattern",
                                  h.integer("_sliding_window_pattern", f.sliding_pattern));
    if (pattern <= 0) throw h.error(fmt::format("sliding_window_pattern {}", pattern));
    for (int il = 0; il < c.n_layers; ++il) c.layer_sliding[il] = (il + 1) % pattern != 0;
  }
}

// A mistyped nested value (rope_theta "abc", rope_type 7) surfaces as a json type_error from
// deep inside; it becomes a FormatError naming the file.
ModelConfig read_hf_config(const HfConfig& h, const ModelFamily& f, const std::string& dir) try {
  ModelConfig c;
  c.name = std::filesystem::path(dir).filename().string();
  c.n_layers = h.integer("num_hidden_layers");
  c.d_model = h.integer("hidden_size");
  c.d_ff = h.integer("intermediate_size");
  c.n_heads = h.integer("num_attention_heads");
  c.n_kv_heads = h.integer("num_key_value_heads", c.n_heads);
  c.head_dim = h.integer("head_dim", c.n_heads ? c.d_model / c.n_heads : 0);
  c.n_vocab = h.integer("vocab_size");
  c.max_context = h.integer("max_position_embeddings", 4096);
  c.norm_eps = h.number("rms_norm_eps", 1e-6f);
  c.rot_dims = c.head_dim;
  c.rope_style = RopeStyle::kNeox;
  apply_family(f, c);
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  read_rope(h, f, c);
  if (f.sliding_pattern > 0) read_sliding(h, f, c);
  if (f.query_pre_attn_scalar) c.attn_scale = 1.0f / std::sqrt(h.number("query_pre_attn_scalar"));
  if (f.hf_softcaps) {
    c.attn_softcap = h.number("attn_logit_softcapping", 0.0f);
    c.final_softcap = h.number("final_logit_softcapping", 0.0f);
  }
  if (h.has(f.hf_act_key) || !f.hf_act_optional) {
    const std::string act = h.str(f.hf_act_key);
    if (act != f.hf_act)
      throw h.error(fmt::format("{} '{}' unsupported ({})", f.hf_act_key, act, f.hf_act));
  }
  c.validate(h.file());
  return c;
} catch (const json::exception& e) {
  throw h.error(fmt::format("malformed config: {}", e.what()));
}

class HfTensorLoader {
 public:
  // dry: check presence, shape and finite norms of every tensor asked for, upload nothing
  // (a first pass, so that a bad folder is refused before any device memory is allocated).
  HfTensorLoader(Device& dev, const SafetensorsReader& st, Weights& w, const std::string& dir,
                 bool norm_plus_one, const LoadProgress& progress, bool dry = false)
      : dev_(dev),
        st_(st),
        w_(w),
        dir_(dir),
        norm_plus_one_(norm_plus_one),
        progress_(progress),
        dry_(dry) {
    for (const auto& t : st.tensors()) total_ += t.n_bytes;
  }

  const SafetensorsTensor* find(const std::string& name, bool optional) {
    const SafetensorsTensor* t = st_.find_tensor(name);
    if (!t && !optional) throw FormatError(fmt::format("{}: missing tensor '{}'", dir_, name));
    return t;
  }
  // A matrix [rows, cols] (stored in PyTorch order, the same) in its stored dtype.
  Tensor matrix(const std::string& name, int64_t rows, int64_t cols, bool optional = false) {
    const SafetensorsTensor* t = find(name, optional);
    if (!t) return {};
    expect_shape(*t, {rows, cols});
    if (dry_) return {};
    Tensor out = upload_weight(dev_, w_, t->dtype, {rows, cols}, t->data, t->n_bytes);
    done(t->n_bytes);
    return out;
  }
  // A vector [n] converted to f32; norm weights get +1 where the family stores w of (1 + w).
  Tensor vec(const std::string& name, int64_t n, bool optional = false, bool is_norm = false) {
    const SafetensorsTensor* t = find(name, optional);
    if (!t) return {};
    expect_shape(*t, {n});
    std::vector<float> f(static_cast<size_t>(n));
    cpu::dequantize_rows(t->dtype, t->data, n, 0, 1, f.data());
    check_finite(f.data(), n, t->file, name);
    if (dry_) return {};
    if (is_norm && norm_plus_one_)
      for (float& v : f) v += 1.0f;
    done(t->n_bytes);
    return upload_weight(dev_, w_, DType::kF32, {n}, f.data(), f.size() * 4);
  }
  Tensor norm(const std::string& name, int64_t n) { return vec(name, n, false, true); }

 private:
  void expect_shape(const SafetensorsTensor& t, const std::vector<int64_t>& want) {
    if (t.shape != want)
      throw FormatError(fmt::format("{}: tensor '{}' has shape [{}], expected [{}]", t.file, t.name,
                                    fmt::join(t.shape, ", "), fmt::join(want, ", ")));
  }
  void done(size_t n) {
    loaded_ += n;
    if (progress_) progress_(loaded_, total_);
  }

  Device& dev_;
  const SafetensorsReader& st_;
  Weights& w_;
  std::string dir_;
  bool norm_plus_one_;
  const LoadProgress& progress_;
  bool dry_;
  size_t total_ = 0, loaded_ = 0;
};

// Every weight of the model through `ld`; sets c.tied_embeddings.
void load_tensors(HfTensorLoader& ld, const HfConfig& h, const ModelFamily& f, ModelConfig& c,
                  Weights& w) {
  const TensorNames& nm = *f.hf_tensors;
  w.tok_embd = ld.matrix(nm.tok_embd, c.n_vocab, c.d_model);
  w.output_norm = ld.norm(nm.output_norm, c.d_model);
  const bool tied = h.boolean("tie_word_embeddings", f.hf_tied_default);
  w.output = ld.matrix(nm.output, c.n_vocab, c.d_model, /*optional=*/tied);
  c.tied_embeddings = !w.output.defined();
  if (c.tied_embeddings) w.output = w.tok_embd;
  for (int il = 0; il < c.n_layers; ++il) w.layers.push_back(load_layer_weights(ld, c, il, nm));
}

std::string identity_of(const SafetensorsReader& st, const ModelConfig& c, const Tokenizer& tok,
                        const std::string& id_cache) {
  std::vector<TensorSample> samples;
  std::vector<std::string> files;
  for (const auto& t : st.tensors()) {
    samples.push_back({t.name, t.n_bytes, t.data});
    if (std::find(files.begin(), files.end(), t.file) == files.end()) files.push_back(t.file);
  }
  return model_identity(c, tensor_hash(samples, files, id_cache), tok);
}

}  // namespace

std::unique_ptr<Model> load_safetensors_model(Device& dev, const std::string& dir,
                                              const LoadProgress& progress,
                                              const std::string& id_cache) {
  namespace fs = std::filesystem;
  const HfConfig h((fs::path(dir) / "config.json").string());
  const ModelFamily& f = family_for_hf(h.str("model_type"), h.file());
  ModelConfig c = read_hf_config(h, f, dir);
  auto tok = std::make_unique<Tokenizer>(
      Tokenizer::from_hf_json((fs::path(dir) / "tokenizer.json").string(), c.n_vocab));
  const SafetensorsReader st(dir);
  std::vector<std::string_view> names;
  for (const SafetensorsTensor& t : st.tensors()) names.push_back(t.name);
  check_layer_count(names, layer_stem(*f.hf_tensors), c.n_layers, dir);
  {
    Weights none;
    ModelConfig scratch = c;
    HfTensorLoader check(dev, st, none, dir, f.hf_norm_plus_one, {}, /*dry=*/true);
    load_tensors(check, h, f, scratch, none);
  }
  Weights w;
  HfTensorLoader ld(dev, st, w, dir, f.hf_norm_plus_one, progress);
  load_tensors(ld, h, f, c, w);
  upload_rope_tables(dev, w, c, {});
  std::string id = identity_of(st, c, *tok, id_cache);
  return std::make_unique<Model>(dev, std::move(c), std::move(w), std::move(tok), std::move(id));
}

}  // namespace kvz
