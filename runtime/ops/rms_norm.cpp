// RMSNorm: validation and dispatch; CPU reference (runtime/ops).
#include "runtime/ops/rms_norm.h"

#include <cmath>

namespace kvz {

void rms_norm(Recorder& rec, const RmsNormArgs& a) {
  KVZ_CHECK(a.x.dtype() == DType::kF32 && a.w.dtype() == DType::kF32 && a.y.dtype() == DType::kF32,
            "rms_norm: f32 only");
  KVZ_CHECK(a.w.numel() == a.x.cols() && same_shape(a.x, a.y), "rms_norm: x {} w {} y {}",
            a.x.shape_str(), a.w.shape_str(), a.y.shape_str());
  if (rec.is_cpu()) return cpu::rms_norm_ref(a);
  constexpr uint32_t kWg = 256;
  struct Push {
    uint32_t n_rows, n_cols;
    float eps, weight_offset;
  } push{static_cast<uint32_t>(a.x.rows()), static_cast<uint32_t>(a.x.cols()), a.eps,
         a.weight_offset};
  rec.dispatch({ShaderId::kRmsNorm, {kWg}}, {a.x, a.w, a.y}, push, {push.n_rows});
}

namespace cpu {
void rms_norm_ref(const RmsNormArgs& a) {
  const int64_t rows = a.x.rows(), cols = a.x.cols();
  const float* w = a.w.host<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = a.x.host<float>() + r * cols;
    float* y = a.y.host<float>() + r * cols;
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += double(x[c]) * x[c];
    float scale = static_cast<float>(1.0 / std::sqrt(ss / double(cols) + a.eps));
    for (int64_t c = 0; c < cols; ++c) y[c] = x[c] * scale * (w[c] + a.weight_offset);
  }
}
}  // namespace cpu

}  // namespace kvz
