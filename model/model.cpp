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

std::unique_ptr<Model> Model::load(Device& dev, const std::string& path,
                                   const LoadProgress& progress) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw InputError("model not found: " + path);
  if (fs::is_directory(path)) return load_safetensors_model(dev, path, progress);
  auto ext = fs::path(path).extension().string();
  if (ext == ".safetensors") {
    const std::string dir = fs::path(path).parent_path().string();
    return load_safetensors_model(dev, dir.empty() ? "." : dir, progress);
  }
  if (ext == ".gguf") return load_gguf_model(dev, path, progress);
  if (ext == ".bin") return load_llama2c_model(dev, path, progress);
  throw InputError("unsupported model path " + path +
                   " (expected a .gguf file, a llama2.c .bin or a Hugging Face model folder)");
}

std::string model_identity(const ModelConfig& c, const std::vector<TensorSample>& tensors) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 1099511628211ull;
  };
  for (const TensorSample& t : tensors) {
    mix(t.name.data(), t.name.size());
    mix(&t.n_bytes, sizeof(t.n_bytes));
    mix(t.data, std::min<size_t>(t.n_bytes, 64));
  }
  return fmt::format("{}:{}:L{}:d{}:{:016x}", c.arch_name, c.name, c.n_layers, c.d_model, h);
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
