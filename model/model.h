// Model = config + device weights + tokenizer + chat template, loaded from a GGUF file, a
// llama2.c checkpoint or a Hugging Face safetensors folder (model/).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat_template.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "model/weights.h"

namespace kvz {

// Called while loading with (bytes done, bytes total).
using LoadProgress = std::function<void(size_t, size_t)>;

class Model {
 public:
  // Detects the format from the path: *.gguf, *.bin (llama2.c; tokenizer.bin or tok*.bin next to
  // it), or a folder with config.json + *.safetensors + tokenizer.json. Throws FormatError naming
  // the file/tensor/key on bad input, OutOfMemory if the weights do not fit the device.
  // `identity_cache_dir` (optional) is where the hash of the weights is remembered between loads
  // (model/identity.h); empty: hash on every load.
  static std::unique_ptr<Model> load(Device& dev, const std::string& path,
                                     const LoadProgress& progress = {},
                                     const std::string& identity_cache_dir = {});

  const ModelConfig& config() const { return config_; }
  // Lowers the context length (llama.cpp's -c): sessions created afterwards size their buffers
  // for n_ctx positions and refuse more. Throws InputError unless 0 < n_ctx <= the model's own.
  void limit_context(int n_ctx);
  const Weights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const ChatTemplate& chat_template() const { return template_; }
  Device& device() const { return *dev_; }
  // Identity for cache, KVzap and head-score files (model/identity.h): architecture, name, sizes
  // and XXH3-128 of every weight byte, the hyperparameters and the vocabulary.
  const std::string& identity() const { return identity_; }

  Model(Device& dev, ModelConfig cfg, Weights w, std::unique_ptr<Tokenizer> tok,
        std::string identity);

 private:
  Device* dev_;
  ModelConfig config_;
  Weights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ChatTemplate template_;
  std::string identity_;
};

// Per-format loaders (model/*_loader.cpp); `id_cache` as Model::load's identity_cache_dir.
std::unique_ptr<Model> load_gguf_model(Device& dev, const std::string& path,
                                       const LoadProgress& progress, const std::string& id_cache);
// `dir` holds config.json, tokenizer.json and model.safetensors or a sharded index.
std::unique_ptr<Model> load_safetensors_model(Device& dev, const std::string& dir,
                                              const LoadProgress& progress,
                                              const std::string& id_cache);
std::unique_ptr<Model> load_llama2c_model(Device& dev, const std::string& path,
                                          const LoadProgress& progress,
                                          const std::string& id_cache);

// Synthetic models (model/synthetic.cpp): a named real configuration ("llama3.1-8b", "qwen2.5-7b",
// "qwen3-8b", "gemma3-12b") with random weights of `weight_type` (f16, bf16, f32 or q4_k) filled
// in device memory; progress counts layers. n_layers > 0 keeps only that many layers (cheap
// long-context experiments: the per-layer work is unchanged). Throws InputError on an unknown
// name or type, or n_layers above the real count.
std::vector<std::string> synthetic_model_names();
std::unique_ptr<Model> make_synthetic_model(Device& dev, const std::string& name, DType weight_type,
                                            const LoadProgress& progress = {}, int n_layers = 0);

// Throws FormatError naming `source` and `tensor` if any of the n values is NaN or infinite
// (norm weights and biases: one bad value silently poisons every activation after it).
void check_finite(const float* v, int64_t n, const std::string& source, std::string_view tensor);
// Throws FormatError if a tensor of a layer at or past n_layers is present (a block count that
// silently drops layers): names look like `<prefix><il>.<rest>`.
void check_layer_count(const std::vector<std::string_view>& tensor_names, std::string_view prefix,
                       int n_layers, const std::string& source);

// Uploads host bytes of a weight as a device tensor of `shape` (outermost first); f16/bf16 norms
// and biases requested as f32 are converted. Keeps the buffer in w.storage.
Tensor upload_weight(Device& dev, Weights& w, DType dtype, std::initializer_list<int64_t> shape,
                     const void* data, size_t n_bytes);
// Derives inverse frequencies (with optional per-dimension divisors, GGUF rope_freqs) and uploads
// them.
void upload_rope_tables(Device& dev, Weights& w, const ModelConfig& cfg,
                        const std::vector<float>& freq_factors);

}  // namespace kvz
