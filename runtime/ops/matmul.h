// Matrix products with weights in any DType, dequantised in the shader (runtime/ops).
#pragma once

#include "runtime/recorder.h"

namespace kvz {

// y[m, n] = x[m, k] . w[n, k]^T (+ bias[n]).
// w: [n, k] in any DType (GGUF layout: row = one output feature, k innermost, quantised blocks
// along k); x: [m, k] f32; y: [m, n] f32; bias: optional [n] f32 (a default Tensor, !defined(), =
// none). m == 1 is the decode matvec (its own variant). A w above the device's
// maxStorageBufferRange is bound as row chunks, one dispatch each (runtime/ops/binding_chunks.h).
struct MatmulArgs {
  Tensor x, w, y;
  Tensor bias;
};
void matmul(Recorder& rec, const MatmulArgs& args);

// y[t, :] = table[ids[t], :] * scale. table: [n_vocab, d] any DType; ids: [n] i32; y: [n, d] f32.
// A table above maxStorageBufferRange is bound as row chunks, one dispatch each.
struct EmbeddingArgs {
  Tensor table, ids, y;
  float scale = 1.0f;
};
void embedding(Recorder& rec, const EmbeddingArgs& args);

namespace cpu {
void matmul_ref(const MatmulArgs& args);
void embedding_ref(const EmbeddingArgs& args);
// Dequantises n values (a multiple of the block size) of type t from src into dst (ggml layout).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
}  // namespace cpu

}  // namespace kvz
