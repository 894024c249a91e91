// Arguments and CPU references of the matrix-product ops (runtime/args: the data half of
// runtime/ops/matmul.h, below both runtime/ops and runtime/cpu so that the CPU backend needs no op
// header).
#pragma once

#include <cstdint>

#include "runtime/tensor.h"

namespace kvz {

// y[m, n] = x[m, k] . w[n, k]^T (+ bias[n]).
// w: [n, k] in any DType (GGUF layout: row = one output feature, k innermost, quantised blocks
// along k); x: [m, k] f32; y: [m, n] f32; bias: optional [n] f32 (a default Tensor, !defined(), =
// none). m == 1 is the decode matvec (its own variant). A w above the device's
// maxStorageBufferRange is bound as row chunks, one dispatch each (runtime/ops/binding_chunks.h).
// w_scratch: optional f16 tensor of at least n * k elements. With it, a block-quantised w on
// tensor cores with many rows (m >= 256) is dequantised into it once, then multiplied as f16
// (same values: the kernel rounds w to f16 either way). It is written by this op: it must not be
// in use by other work of a Recorder::Concurrent group.
// x8: optional, x of a decode step (m == 1) already rounded by quantize_x8(): Q4_K weights then
// run the int8 matvec on it (x rounded to int8 per 32 values; the per-block minimum term stays
// exact), so that several matvecs on the same x round it once. Other weight types ignore it.
struct MatmulArgs {
  Tensor x, w, y;
  Tensor bias;
  Tensor w_scratch = {};
  Tensor x8 = {};
};
// 32-bit elements of a quantize_x8 result for x of k values: int8 x (k / 4) + (dx, sum) per 32.
constexpr int64_t matvec_x8_elems(int64_t k) { return k / 4 + k / 16; }

// y[t, :] = table[ids[t], :] * scale. table: [n_vocab, d] any DType; ids: [n] i32; y: [n, d] f32.
// A table above maxStorageBufferRange is bound as row chunks, one dispatch each.
struct EmbeddingArgs {
  Tensor table, ids, y;
  float scale = 1.0f;
};

namespace cpu {
void matmul_ref(const MatmulArgs& args);
void embedding_ref(const EmbeddingArgs& args);
// quantize_x8 on the host, in shaders/include/x8.glsl's arithmetic (same layout and rounding).
void quantize_x8_ref(const Tensor& x, const Tensor& x8);
}  // namespace cpu

}  // namespace kvz
