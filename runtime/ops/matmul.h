// Matrix products with weights in any DType, dequantised in the shader (runtime/ops).
#pragma once

#include "runtime/args/matmul.h"
#include "runtime/recorder.h"

namespace kvz {

// MatmulArgs: runtime/args/matmul.h.
void matmul(Recorder& rec, const MatmulArgs& args);
// x [1, k] f32 (k % 256 == 0) rounded to int8 per 32 values into x8 (>= matvec_x8_elems(k)
// 32-bit elements), for MatmulArgs::x8 (shaders/quantize_x8.comp; cpu::quantize_x8_ref). rms_norm
// and gated_act can write the same bits as part of their own dispatch (their args' x8).
void quantize_x8(Recorder& rec, const Tensor& x, const Tensor& x8);
// Whether x (all its values as one vector) can be rounded into x8 by quantize_x8.
bool quantize_x8_fits(const Tensor& x, const Tensor& x8);
// Whether matmul() on `dev` uses MatmulArgs::x8 for weights of type t (decode, Q4_K, Vulkan).
bool matvec_uses_x8(const Device& dev, DType t);
// Elements of the f16 w_scratch with which matmul() on `dev` dequantises w first for some m up to
// max_m (0: it never would: not a block type, no tensor cores, too few rows, or too big to bind).
int64_t matmul_scratch_elems(const Device& dev, const Tensor& w, int64_t max_m);
// Fewest rows of x for which matmul() uses a given w_scratch.
constexpr int64_t kMatmulDequantMinTokens = 256;

// EmbeddingArgs: runtime/args/matmul.h.
void embedding(Recorder& rec, const EmbeddingArgs& args);

}  // namespace kvz
