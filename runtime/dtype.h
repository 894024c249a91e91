// Element types of tensors, including the GGUF block-quantised weight formats (runtime/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kvz {

// Storage type of a tensor. Quantised types store blocks of `block_elems` values in
// `block_bytes` bytes, laid out exactly as GGUF / ggml does (see runtime/cpu/dequant.h).
enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kI32,
  kQ8_0,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ4_K,
  kQ5_K,
  kQ6_K,
  kSentinel,
};

struct DTypeInfo {
  std::string_view name;
  int block_elems;  // values per block (1 for plain types)
  int block_bytes;  // bytes per block
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
inline bool is_quantized(DType t) { return dtype_info(t).block_elems > 1; }

// Bytes of a row of n_elems values; aborts unless n_elems is a multiple of the block size.
size_t row_bytes(DType t, int64_t n_elems);

// Parses "f32", "f16", "bf16", "q4_k", ... (case-insensitive); returns kSentinel if unknown.
DType dtype_from_name(std::string_view name);

}  // namespace kvz
