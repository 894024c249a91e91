// safetensors reader (model/): one file or a sharded folder (model.safetensors.index.json), with
// zero-copy views of the memory-mapped tensor data. Malformed input throws kvz::FormatError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/mapped_file.h"
#include "runtime/dtype.h"

namespace kvz {

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::kF32;  // F32, F16 or BF16
  // As stored (PyTorch order): shape[0] is the OUTERMOST dimension, the reverse of GGUF's ne.
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mapping; valid while the reader lives
  size_t n_bytes = 0;
  std::string file;  // the shard it lives in

  int64_t n_elems() const;
};

class SafetensorsReader {
 public:
  // `path` is a .safetensors file, or a folder holding model.safetensors.index.json (sharded)
  // or a single model.safetensors. Throws InputError if a file cannot be opened, FormatError
  // if anything is malformed (bad header length, bad JSON, unsupported dtype, data out of
  // bounds or overlapping, index naming a tensor its shard lacks).
  explicit SafetensorsReader(const std::string& path);
  // Parses caller-owned bytes of one file (they must outlive the reader); for fuzzing/tests.
  SafetensorsReader(std::span<const uint8_t> bytes, std::string name);

  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }  // sorted by name
  const SafetensorsTensor* find_tensor(std::string_view name) const;          // nullptr if missing
  const SafetensorsTensor& tensor(std::string_view name) const;               // throws FormatError
  // The string->string "__metadata__" entries of every file (later shards overwrite).
  const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }

 private:
  void parse_file(std::span<const uint8_t> bytes, const std::string& name);
  void load_index(const std::string& dir, const std::string& index_path);

  std::string name_;  // the path or name given to the constructor
  std::vector<MappedFile> files_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

}  // namespace kvz
