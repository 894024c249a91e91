// RMSNorm with an optional weight offset (Gemma's (1 + w) convention) (runtime/ops).
#pragma once

#include "runtime/recorder.h"

namespace kvz {

// y[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * (w + weight_offset), after x += residual
// when a residual is given (the residual stream's add fused with the next norm; x is updated).
// x, y, residual: [n_rows, n_cols] f32 (y may alias x); w: [n_cols] f32.
struct RmsNormArgs {
  Tensor x, w, y;
  float eps = 1e-5f;
  float weight_offset = 0.0f;
  Tensor residual = {};  // optional
};
void rms_norm(Recorder& rec, const RmsNormArgs& args);

namespace cpu {
void rms_norm_ref(const RmsNormArgs& args);
}

}  // namespace kvz
