// Storage types of the paged KV pools (runtime/): f16, or llama.cpp's q8_0 / q4_0 blocks of 32
// values with one f16 scale each (runtime/dtype.h layouts), quantised once when a row is written.
#pragma once

#include <cstdint>
#include <string_view>

#include "runtime/dtype.h"

namespace kvz {

// Whether t is a KV cache storage type: f16, q8_0 or q4_0.
bool is_kv_cache_type(DType t);
// Parses "f16", "q8_0" or "q4_0" (llama.cpp's --cache-type-k names); throws InputError naming
// `what` (e.g. "--cache-type-k") and the accepted names otherwise.
DType kv_cache_type_from_name(std::string_view name, std::string_view what);
// Bytes of one cached row of head_dim values (quantised types need head_dim % 32 == 0).
size_t kv_row_bytes(DType t, int64_t head_dim);
// Spec-constant code of a KV type in the shaders (shaders/include/kv_quant.glsl).
uint32_t kv_type_code(DType t);

// Bound on |x - dequant(quant(x))| for every value of a block whose stored f16 scale is d:
// q8_0 rounds x / d to nearest (0.5 d); q4_0 may clamp +8 d to +7 d (1 d); both also carry the
// rounding of the scale itself to f16 (|q| <= 128 times half an f16 ulp of d, relative 2^-11).
double kv_block_error_bound(DType t, float d);

namespace cpu {
// Quantises n values (a multiple of 32 for q8_0 / q4_0) into dst in type t, exactly as llama.cpp's
// quantize_row_q8_0_ref / quantize_row_q4_0_ref (f16: round to nearest even).
void quantize_kv_row(DType t, const float* x, void* dst, int64_t n);
// The inverse: n values of type t (f16, q8_0, q4_0) at src as f32 (runtime/cpu/dequant.h).
void dequantize_kv_row(DType t, const void* src, float* dst, int64_t n);
}  // namespace cpu

}  // namespace kvz
