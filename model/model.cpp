// Model construction, format detection and weight upload helpers (model/).
#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "runtime/ops/matmul.h"

namespace kvz {

Model::Model(Device& dev, ModelConfig cfg, Weights w, std::unique_ptr<Tokenizer> tok,
             std::string identity)
    : dev_(&dev),
      config_(std::move(cfg)),
      weights_(std::move(w)),
      tokenizer_(std::move(tok)),
      template_(chat_template_for(*tokenizer_, config_.arch_name)),
      identity_(std::move(identity)) {}

void Model::limit_context(int n_ctx) {
  if (n_ctx <= 0 || n_ctx > config_.max_context)
    throw InputError(fmt::format("context size {} outside 1..{} (the model's context length)",
                                 n_ctx, config_.max_context));
  config_.max_context = n_ctx;
}

namespace {

std::unique_ptr<Model> load_by_format(Device& dev, const std::string& path,
                                      const LoadProgress& progress, const std::string& id_cache) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw InputError(fmt::format("cannot open model {}: {}", path, ec.message()));
  if (!fs::exists(st)) throw InputError("model not found: " + path);
  if (fs::is_directory(st)) return load_safetensors_model(dev, path, progress, id_cache);
  auto ext = fs::path(path).extension().string();
  if (ext == ".safetensors") {
    const std::string dir = fs::path(path).parent_path().string();
    return load_safetensors_model(dev, dir.empty() ? "." : dir, progress, id_cache);
  }
  if (ext == ".gguf") return load_gguf_model(dev, path, progress, id_cache);
  if (ext == ".bin") return load_llama2c_model(dev, path, progress, id_cache);
  throw InputError("unsupported model path " + path +
                   " (expected a .gguf file, a llama2.c .bin or a Hugging Face model folder)");
}

}  // namespace

// Library exceptions that input can still raise from deep inside a loader (a file-system error on
// a sibling file, an allocation a corrupt size asks for) become typed errors naming the path.
std::unique_ptr<Model> Model::load(Device& dev, const std::string& path,
                                   const LoadProgress& progress,
                                   const std::string& identity_cache_dir) {
  try {
    return load_by_format(dev, path, progress, identity_cache_dir);
  } catch (const Error&) {
    throw;
  } catch (const std::filesystem::filesystem_error& e) {
    throw InputError(fmt::format("loading {}: {}", path, e.what()));
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(fmt::format("loading {}: out of host memory", path));
  } catch (const std::exception& e) {
    throw FormatError(fmt::format("loading {}: {}", path, e.what()));
  }
}

void check_finite(const float* v, int64_t n, const std::string& source, std::string_view tensor) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      throw FormatError(
          fmt::format("{}: tensor '{}' holds {} at index {}", source, tensor, v[i], i));
}

void check_layer_count(const std::vector<std::string_view>& tensor_names, std::string_view prefix,
                       int n_layers, const std::string& source) {
  for (std::string_view name : tensor_names) {
    if (!name.starts_with(prefix)) continue;
    int64_t il = 0;
    size_t i = prefix.size();
    for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && il <= n_layers; ++i)
      il = il * 10 + (name[i] - '0');
    if (i > prefix.size() && il >= n_layers)
      throw FormatError(
          fmt::format("{}: tensor '{}' belongs to a layer past the {} the metadata "
                      "declares",
                      source, name, n_layers));
  }
}

Tensor upload_weight(Device& dev, Weights& w, DType dtype, std::initializer_list<int64_t> shape,
                     const void* data, size_t n_bytes) {
  Tensor probe(BufferView{0, 0, SIZE_MAX, nullptr}, dtype, shape);
  KVZ_CHECK(probe.nbytes() == n_bytes, "weight {} expects {} bytes, got {}", probe.shape_str(),
            probe.nbytes(), n_bytes);
  w.storage.push_back(dev.alloc(n_bytes));
  dev.upload(w.storage.back().view(), data, n_bytes);
  w.bytes += n_bytes;
  return w.storage.back().tensor(dtype, shape);
}

void upload_rope_tables(Device& dev, Weights& w, const ModelConfig& cfg,
                        const std::vector<float>& freq_factors) {
  int rot = cfg.rot_dims ? cfg.rot_dims : cfg.head_dim;
  auto inv = rope_inv_freqs(cfg.rope_base, rot, cfg.rope_scaling);
  if (!freq_factors.empty()) {
    if (freq_factors.size() != inv.size())
      throw FormatError(
          fmt::format("rope_freqs has {} entries, expected {}", freq_factors.size(), inv.size()));
    for (size_t i = 0; i < inv.size(); ++i) inv[i] /= freq_factors[i];
  }
  int64_t n = static_cast<int64_t>(inv.size());
  w.rope_inv_freq = upload_weight(dev, w, DType::kF32, {n}, inv.data(), inv.size() * 4);
  auto local = rope_inv_freqs(cfg.rope_base_local, rot, RopeScaling{});
  w.rope_inv_freq_local = upload_weight(dev, w, DType::kF32, {n}, local.data(), local.size() * 4);
}

}  // namespace kvz
