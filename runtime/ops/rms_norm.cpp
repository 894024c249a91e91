// RMSNorm: validation and dispatch; CPU reference (runtime/ops).
#include "runtime/ops/rms_norm.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace kvz {

void rms_norm(Recorder& rec, const RmsNormArgs& a) {
  KVZ_CHECK(a.x.dtype() == DType::kF32 && a.w.dtype() == DType::kF32 && a.y.dtype() == DType::kF32,
            "rms_norm: f32 only");
  KVZ_CHECK(a.w.numel() == a.x.cols() && same_shape(a.x, a.y), "rms_norm: x {} w {} y {}",
            a.x.shape_str(), a.w.shape_str(), a.y.shape_str());
  const bool res = a.residual.defined();
  KVZ_CHECK(!res || (a.residual.dtype() == DType::kF32 && same_shape(a.x, a.residual)),
            "rms_norm: residual {} for x {}", a.residual.shape_str(), a.x.shape_str());
  if (rec.is_cpu()) return cpu::rms_norm_ref(a);
  // Enough threads for 4 vec4 each (the shader's register path), 64 to 1024.
  const uint32_t limit = std::min<uint32_t>(1024, rec.caps().max_workgroup_invocations);
  const uint32_t wg = std::clamp<uint32_t>(
      std::bit_ceil(static_cast<uint32_t>((a.x.cols() + 15) / 16)), std::min(64u, limit), limit);
  struct Push {
    uint32_t n_rows, n_cols;
    float eps, weight_offset;
    uint32_t has_residual;
  } push{static_cast<uint32_t>(a.x.rows()), static_cast<uint32_t>(a.x.cols()), a.eps,
         a.weight_offset, res ? 1u : 0u};
  rec.dispatch({ShaderId::kRmsNorm, {wg}}, {a.x, a.w, a.y, res ? a.residual : a.x}, push,
               {push.n_rows});
}

namespace cpu {
void rms_norm_ref(const RmsNormArgs& a) {
  const int64_t rows = a.x.rows(), cols = a.x.cols();
  const float* w = a.w.host<float>();
  for (int64_t r = 0; r < rows; ++r) {
    float* x = a.x.host<float>() + r * cols;
    float* y = a.y.host<float>() + r * cols;
    if (a.residual.defined()) {
      const float* res = a.residual.host<float>() + r * cols;
      for (int64_t c = 0; c < cols; ++c) x[c] += res[c];
    }
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += double(x[c]) * x[c];
    float scale = static_cast<float>(1.0 / std::sqrt(ss / double(cols) + a.eps));
    for (int64_t c = 0; c < cols; ++c) y[c] = x[c] * scale * (w[c] + a.weight_offset);
  }
}
}  // namespace cpu

}  // namespace kvz
