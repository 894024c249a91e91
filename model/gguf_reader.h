// GGUF v2/v3 reader (model/): metadata key/values, tensor directory and zero-copy views of the
// memory-mapped tensor data. Every malformed input throws kvz::FormatError; nothing is trusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/mapped_file.h"
#include "runtime/dtype.h"

namespace kvz {

// Metadata value types, numbered as in the GGUF specification.
enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

std::string_view gguf_type_name(GgufType t);

// One metadata value. Scalars live in `scalar` (integers widened to int64_t / uint64_t, floats
// to double). Arrays (type kArray, element type `elem_type`) fill exactly one of `strs`, `ints`
// (all integer and bool element types; u64 values above INT64_MAX are stored bit-cast) or
// `floats`. Nested arrays are rejected as a FormatError.
struct GgufValue {
  GgufType type = GgufType::kU8;
  GgufType elem_type = GgufType::kU8;
  std::variant<uint64_t, int64_t, double, bool, std::string> scalar;
  std::vector<std::string> strs;
  std::vector<int64_t> ints;
  std::vector<double> floats;

  size_t array_size() const;
};

// One entry of the tensor directory, with a view into the mapped file.
struct GgufTensor {
  std::string name;
  DType dtype = DType::kF32;
  // GGUF `ne` order: shape[0] is the innermost (contiguous) dimension, e.g. a [n_vocab, d_model]
  // PyTorch embedding is stored as shape {d_model, n_vocab}. 1 to 4 entries, each >= 0.
  std::vector<int64_t> shape;
  uint64_t offset = 0;            // byte offset relative to the start of the data section
  const uint8_t* data = nullptr;  // points into the mapping; valid while the reader lives
  size_t n_bytes = 0;

  int64_t n_elems() const;
};

// Parses the whole header eagerly (so every error surfaces in the constructor) and then serves
// typed look-ups. Getters throw FormatError naming the file and key when the key is missing or
// has an incompatible type; the opt_* variants return nullopt only when the key is missing.
// Integer getters accept any integer type whose value fits the requested type.
class GgufReader {
 public:
  // Maps and parses `path`. Throws InputError if it cannot be opened, FormatError if malformed.
  explicit GgufReader(const std::string& path);
  // Parses caller-owned bytes (they must outlive the reader); `name` is used in messages.
  GgufReader(std::span<const uint8_t> bytes, std::string name);

  GgufReader(GgufReader&&) noexcept = default;
  GgufReader& operator=(GgufReader&&) noexcept = default;

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

  bool has(std::string_view key) const { return find(key) != nullptr; }
  const GgufValue* find(std::string_view key) const;                   // nullptr if missing
  const std::vector<std::string>& keys() const { return key_order_; }  // file order

  uint32_t get_u32(std::string_view key) const;
  int32_t get_i32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  float get_f32(std::string_view key) const;  // accepts f32 and f64 values
  double get_f64(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_str(std::string_view key) const;
  const std::vector<std::string>& get_arr_str(std::string_view key) const;
  std::vector<int32_t> get_arr_i32(std::string_view key) const;  // any integer element type
  std::vector<float> get_arr_f32(std::string_view key) const;    // f32/f64 elements

  std::optional<uint32_t> opt_u32(std::string_view key) const;
  std::optional<int32_t> opt_i32(std::string_view key) const;
  std::optional<float> opt_f32(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;
  std::optional<std::string> opt_str(std::string_view key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // file order
  const GgufTensor* find_tensor(std::string_view name) const;          // nullptr if missing
  // Throws FormatError naming the file and tensor if it is missing.
  const GgufTensor& tensor(std::string_view name) const;

 private:
  void parse(std::span<const uint8_t> bytes);
  const GgufValue& require(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t lo, int64_t hi) const;

  std::optional<MappedFile> file_;
  std::string name_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace kvz
