// CPU backend matmul paths (runtime/cpu): the scalar reference lives in runtime/ops/matmul.h
// (cpu::matmul_ref); this is the fast fallback used to run real models without a GPU.
#pragma once

#include "runtime/ops/matmul.h"

namespace kvz::cpu {

// A default-constructed Tensor (0-d) or a zero-length one means "no bias".
inline bool has_bias(const MatmulArgs& a) { return a.bias.defined() && a.bias.numel() > 0; }

// Same contract as matmul_ref. Many x rows: dequantises w to f32 in panels of rows and multiplies
// with Eigen; few (decode): dequantises each w row once and dots it with every x row. Work spread
// over n_threads threads (0 = hardware concurrency). Result equals the reference up to fp32
// summation order.
void matmul_fast(const MatmulArgs& args, int n_threads = 0);

}  // namespace kvz::cpu
