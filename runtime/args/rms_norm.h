// Arguments and CPU references of RMSNorm (runtime/args: the data half of
// runtime/ops/rms_norm.h, below both runtime/ops and runtime/cpu so that the CPU backend needs no
// op header).
#pragma once

#include "runtime/tensor.h"

namespace kvz {

// y[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * (w + weight_offset), after x += residual
// when a residual is given (the residual stream's add fused with the next norm; x is updated).
// x, y, residual: [n_rows, n_cols] f32 (y may alias x); w: [n_cols] f32.
// x8: optional, y also rounded to int8 for MatmulArgs::x8: the same bits as quantize_x8(y, x8)
// after the norm, all n_rows * n_cols values as one vector (n_cols % 32 == 0, n_rows * n_cols %
// 256 == 0), in the norm's own dispatch where the row fits in shared memory.
struct RmsNormArgs {
  Tensor x, w, y;
  float eps = 1e-5f;
  float weight_offset = 0.0f;
  Tensor residual = {};  // optional
  Tensor x8 = {};        // optional, [>= matvec_x8_elems(n_rows * n_cols)] i32
};

namespace cpu {
void rms_norm_ref(const RmsNormArgs& args);
}

}  // namespace kvz
