// RMSNorm: validation and dispatch; CPU reference (runtime/ops).
#include "runtime/ops/rms_norm.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "runtime/ops/matmul.h"

namespace kvz {

void rms_norm(Recorder& rec, const RmsNormArgs& a) {
  KVZ_CHECK(a.x.dtype() == DType::kF32 && a.w.dtype() == DType::kF32 && a.y.dtype() == DType::kF32,
            "rms_norm: f32 only");
  KVZ_CHECK(a.w.numel() == a.x.cols() && same_shape(a.x, a.y), "rms_norm: x {} w {} y {}",
            a.x.shape_str(), a.w.shape_str(), a.y.shape_str());
  const bool res = a.residual.defined();
  KVZ_CHECK(!res || (a.residual.dtype() == DType::kF32 && same_shape(a.x, a.residual)),
            "rms_norm: residual {} for x {}", a.residual.shape_str(), a.x.shape_str());
  const bool x8 = a.x8.defined();
  KVZ_CHECK(!x8 || (a.x.cols() % 32 == 0 && quantize_x8_fits(a.y, a.x8)),
            "rms_norm: x8 {} for y {} (n_cols % 32 == 0)", a.x8.shape_str(), a.y.shape_str());
  if (rec.is_cpu()) return cpu::rms_norm_ref(a);
  // Enough threads for 4 vec4 each (the shader's register path), 64 to 1024; one row (decode)
  // gets up to one vec4 per thread: its time is latency, not throughput.
  const uint32_t limit = std::min<uint32_t>(1024, rec.caps().max_workgroup_invocations);
  const int64_t per_thread = a.x.rows() == 1 ? 4 : 16;
  const uint32_t wg = std::clamp<uint32_t>(
      std::bit_ceil(static_cast<uint32_t>((a.x.cols() + per_thread - 1) / per_thread)),
      std::min(64u, limit), limit);
  struct Push {
    uint32_t n_rows, n_cols;
    float eps, weight_offset;
    uint32_t has_residual;
  } push{static_cast<uint32_t>(a.x.rows()), static_cast<uint32_t>(a.x.cols()), a.eps,
         a.weight_offset, res ? 1u : 0u};
  const Tensor& r = res ? a.residual : a.x;
  // The x8 variant keeps a row of y in shared memory beside the reduction's 1024 floats.
  if (x8 && 4 * (1024 + uint64_t(push.n_cols)) <= rec.caps().shared_memory_bytes)
    return rec.dispatch({ShaderId::kRmsNormX8, {wg, push.n_cols / 4}}, {a.x, a.w, a.y, r, a.x8},
                        push, {push.n_rows});
  rec.dispatch({ShaderId::kRmsNorm, {wg}}, {a.x, a.w, a.y, r}, push, {push.n_rows});
  if (x8) quantize_x8(rec, a.y, a.x8);
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
  if (a.x8.defined()) quantize_x8_ref(a.y, a.x8);
}
}  // namespace cpu

}  // namespace kvz
