// Gated MLP activations and row softmax: validation and dispatch; CPU references (runtime/ops).
#include "runtime/ops/activation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "runtime/ops/matmul.h"
#include "runtime/ops/row_grid.h"

namespace kvz {

void gated_act(Recorder& rec, const GatedActArgs& a) {
  KVZ_CHECK(
      a.gate.dtype() == DType::kF32 && a.up.dtype() == DType::kF32 && a.y.dtype() == DType::kF32,
      "gated_act: f32 only");
  KVZ_CHECK(a.gate.numel() == a.up.numel() && a.gate.numel() == a.y.numel(),
            "gated_act: gate {} up {} y {}", a.gate.shape_str(), a.up.shape_str(), a.y.shape_str());
  const bool x8 = a.x8.defined();
  KVZ_CHECK(!x8 || quantize_x8_fits(a.y, a.x8), "gated_act: x8 {} for y {}", a.x8.shape_str(),
            a.y.shape_str());
  if (a.gate.empty()) return;
  if (rec.is_cpu()) return cpu::gated_act_ref(a);
  constexpr uint32_t kWg = 256;
  struct Push {
    uint32_t n_elems, groups_per_y;
  } push{static_cast<uint32_t>(a.gate.numel()), 0};
  const std::vector<uint32_t> spec = {kWg, static_cast<uint32_t>(a.act)};
  if (x8) {  // whole workgroups: quantize_x8_fits means n_elems % 256 == 0
    static_assert(kWg == 256);
    Grid grid = row_grid(push.n_elems / kWg, push.groups_per_y);
    return rec.dispatch({ShaderId::kGatedActX8, spec}, {a.gate, a.up, a.y, a.x8}, push, grid);
  }
  Grid grid = row_grid(div_up(push.n_elems, kWg), push.groups_per_y);
  rec.dispatch({ShaderId::kGatedAct, spec}, {a.gate, a.up, a.y}, push, grid);
}

void softmax(Recorder& rec, const SoftmaxArgs& a) {
  KVZ_CHECK(a.x.dtype() == DType::kF32 && a.y.dtype() == DType::kF32 && same_shape(a.x, a.y),
            "softmax: x {} y {}", a.x.shape_str(), a.y.shape_str());
  if (a.x.empty()) return;
  if (rec.is_cpu()) return cpu::softmax_ref(a);
  constexpr uint32_t kWg = 256;
  struct Push {
    uint32_t n_rows, n_cols;
    float scale;
    uint32_t rows_per_y;
  } push{static_cast<uint32_t>(a.x.rows()), static_cast<uint32_t>(a.x.cols()), a.scale, 0};
  Grid grid = row_grid(push.n_rows, push.rows_per_y);
  rec.dispatch({ShaderId::kSoftmax, {kWg}}, {a.x, a.y}, push, grid);
}

namespace cpu {

namespace {
double act_ref(double x, Activation act) {
  switch (act) {
    case Activation::kSilu:
      return x / (1 + std::exp(-x));
    case Activation::kGeluTanh: {
      const double k = std::sqrt(2 / std::numbers::pi);
      return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x)));
    }
    case Activation::kGelu:
      return 0.5 * x * (1 + std::erf(x / std::numbers::sqrt2));
  }
  return 0;
}
}  // namespace

void gated_act_ref(const GatedActArgs& a) {
  const float* g = a.gate.host<float>();
  const float* u = a.up.host<float>();
  float* y = a.y.host<float>();
  for (int64_t i = 0; i < a.gate.numel(); ++i)
    y[i] = static_cast<float>(act_ref(g[i], a.act) * u[i]);
  if (a.x8.defined()) quantize_x8_ref(a.y, a.x8);
}

void softmax_ref(const SoftmaxArgs& a) {
  const int64_t rows = a.x.rows(), cols = a.x.cols();
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = a.x.host<float>() + r * cols;
    float* y = a.y.host<float>() + r * cols;
    // Scaled logits rounded to fp32 first, as the GPU (and HF) compute them.
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, double(x[c] * a.scale));
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(double(x[c] * a.scale) - m);
    for (int64_t c = 0; c < cols; ++c)
      y[c] = static_cast<float>(std::exp(double(x[c] * a.scale) - m) / sum);
  }
}

}  // namespace cpu
}  // namespace kvz
