// SIMD kernels of the CPU matmul (runtime/cpu), compiled for every x86 level by Highway and
// picked at run time (runtime/cpu/qdot_hwy.cpp): activations quantised to int8 once per row,
// weight rows unpacked to unsigned 8-bit codes with a scale and offset per 16 values, and integer
// dot products of the two; f16/bf16/f32 weights through float SIMD.
//
// Quantised x row (k % 32 == 0): q[k] int8 = round(x * 127 / amax) per 32 values, so that
// x ~ d * q with d = amax / 127; d16[g] = d of 16-value group g (each 32-block's d twice);
// s16[g] = d * sum of q over group g (the quantised group sum, for the weight offsets).
// Unpacked weight row: w[i] = s[g] * u[i] + b[g] exactly (the dequantised value, f32 math
// aside), u[i] in 0..63 (Q8_0: signed codes, b = 0). Hence for any row pair
//   w . x_hat = sum_g s[g] d16[g] (u . q)_g + b[g] s16[g],  x_hat = d * q,
// which is what dot_tile computes: weights exactly, x rounded to 8 bits per 32 values.
//
// K-quants (Q4_K, Q5_K, Q6_K; qdot_k_layout) use llama.cpp's Q8_K-style x instead: one d per 256
// values (d16 holds it per group, s16 as above), and the weight row keeps its integer sub-block
// scales: sc[e] (int16) for value pair e, d256 per block, b16 the float offset per group:
//   w[i] = d256[b] * sc[i / 2] * u[i] + b16[g],
//   w . x_hat = sum_b d256[b] dx[b] sum_i sc[i / 2] u[i] q[i] + sum_g b16[g] s16[g],
// so the integer sum over a whole block is scaled once (runtime/cpu/qdot_k_hwy.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/dtype.h"

namespace kvz::cpu {

// Rows are padded with zero codes and scales to a multiple of this many values: a kernel step
// covers 16 groups of 16 at AVX-512 width.
constexpr int64_t kQdotPad = 256;
inline int64_t qdot_padded(int64_t k) { return (k + kQdotPad - 1) / kQdotPad * kQdotPad; }

// m rows of int8 x codes, each row `stride` bytes (qdot_padded(k), zero padding), with d16 and
// s16 of k / 16 floats per row; one scale per `block` values (32, or 256 for the K-quants).
struct XQuantRows {
  int8_t* q;
  float* d16;
  float* s16;
  int64_t k, stride;
  int64_t block = 32;
};
// n rows of unpacked weight codes, same layout; s16 / b16 the scale and offset of each group.
struct WUnpackedRows {
  uint8_t* u;
  float* s16;
  float* b16;
  int64_t k, stride;
  bool signed_codes;      // Q8_0: u holds int8 codes
  int16_t* sc = nullptr;  // K-quants: [n, stride / 2] integer scale of each value pair
  float* d256 = nullptr;  // K-quants: [n, stride / 256] block scale (s16 unused when set)
};

// Q4_K, Q5_K, Q6_K: can be unpacked with integer scales and multiplied with x quantised per 256.
bool qdot_k_layout(DType t);
// The x rows per call from which K-quants take that layout (the panel path): below it (decode),
// rows are unpacked one at a time and expanding the integer scales costs more than it saves.
constexpr int64_t kQdotTileMinM = 8;
// Values per x scale for a call of m rows against t: 256 for K-quants from kQdotTileMinM rows,
// else 32.
inline int64_t qdot_x_block(DType t, int64_t m) {
  return qdot_k_layout(t) && m >= kQdotTileMinM ? 256 : 32;
}

// Weight types dot_tile handles (block-quantised); the others go through f32 rows.
bool qdot_supports(DType t);

// x rows [i0, i1) of x [*, k] f32 into xq (k % xq.block == 0).
void quantize_x_rows(const float* x, int64_t i0, int64_t i1, const XQuantRows& xq);
// Weight rows [r0, r1) of w [*, k] (ggml blocks) into wu rows [0, r1 - r0); wu.sc and wu.d256
// set (only for qdot_k_layout(t)) select the integer layout.
void unpack_w_rows(DType t, const uint8_t* w, int64_t r0, int64_t r1, const WUnpackedRows& wu);
// y[i * ldy + j] = wu row j . x row i (+ bias[j]) for i in [0, m), j in [0, n); x rows i0 + i.
void qdot_tile(const WUnpackedRows& wu, int64_t n, const XQuantRows& xq, int64_t i0, int64_t m,
               const float* bias, float* y, int64_t ldy);

// One weight row w (ggml blocks of type t) against x rows [0, m): y[i * ldy] = w . x row i
// (+ bias[0]), straight from the blocks without unpacking, where this SIMD level has such a kernel
// for t and xq's rounding (Q4_K and Q6_K on the AVX-512 levels); false (nothing written) otherwise.
bool qdot_row_direct(DType t, const uint8_t* w, const XQuantRows& xq, int64_t m, const float* bias,
                     float* y, int64_t ldy);

// qdot_tile for K-quant rows (wu.sc set; runtime/cpu/qdot_k_hwy.cpp).
void qdot_tile_k(const WUnpackedRows& wu, int64_t n, const XQuantRows& xq, int64_t i0, int64_t m,
                 const float* bias, float* y, int64_t ldy);

// Weight rows [r0, r1) of an f32/f16/bf16 w [*, k] as f32 into dst (row stride k).
void float_w_rows(DType t, const uint8_t* w, int64_t k, int64_t r0, int64_t r1, float* dst);
// y[i * ldy + j] = w row j . x row i (+ bias[j]); w [n, k] and x [m, k] f32, row stride k.
void fdot_tile(const float* w, int64_t n, const float* x, int64_t m, int64_t k, const float* bias,
               float* y, int64_t ldy);

// The SIMD level the dispatcher picks ("AVX3_DL", "AVX2", ...): what the kernels above run.
std::string simd_target_name();
// The name of one Highway target (an element of simd_targets()).
std::string simd_name(int64_t target);
// Highway targets compiled into the kernels that this CPU runs, best first.
std::vector<int64_t> simd_targets();
// For tests: dispatch to `target` (one of simd_targets()) only; 0 restores the normal choice.
void simd_force_target(int64_t target);

}  // namespace kvz::cpu
