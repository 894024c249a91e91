// Model identity (model/): what cache files, KVzap weights and head-score files record to refuse
// being used with another model. XXH3-128 over every tensor's name, size and bytes, the
// hyperparameters that shape the KV cache and the vocabulary; the tensor hash, the expensive part,
// is remembered in a small sidecar per model file so a second load does not rehash.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "model/model_config.h"
#include "model/tokenizer.h"

namespace kvz {

struct TensorSample {
  std::string_view name;
  size_t n_bytes = 0;
  const void* data = nullptr;
};

// XXH3-128 over every tensor's name, byte count and bytes, as 32 hex digits. With a non-empty
// `cache_dir`, the result is remembered there in a sidecar keyed by (path, size, mtime) of each of
// `files` (the files the tensors live in) and reused while they match; a cache folder that cannot
// be read or written is ignored (the hash is then computed on every load).
std::string tensor_hash(const std::vector<TensorSample>& tensors,
                        const std::vector<std::string>& files, const std::string& cache_dir);

// "arch:name:L<layers>:d<d_model>:<32 hex>": the hex is XXH3-128 of the tensor hash, the
// hyperparameters (every ModelConfig field the forward pass reads) and the vocabulary.
std::string model_identity(const ModelConfig& c, const std::string& tensor_hash,
                           const Tokenizer& tok);

}  // namespace kvz
