// Rotary position embedding: frequency tables (HF transformers' rope_init functions), validation
// and dispatch; CPU reference (runtime/ops).
#include "runtime/ops/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "runtime/ops/row_grid.h"

namespace kvz {
namespace {

// HF `_compute_llama3_parameters`: keep high frequencies, divide low ones by `factor`, blend the
// band between wavelengths original_context / high_freq_factor and original_context /
// low_freq_factor.
double llama3_scale(double f, const RopeScaling& s) {
  const double ctx = s.original_context, wavelen = 2 * std::numbers::pi / f;
  if (wavelen < ctx / s.high_freq_factor) return f;
  if (wavelen > ctx / s.low_freq_factor) return f / s.factor;
  const double smooth =
      (ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1 - smooth) * f / s.factor + smooth * f;
}

// HF `_compute_yarn_parameters` (static YaRN, beta_fast 32, beta_slow 1, truncate): dims below the
// `beta_fast` correction dim extrapolate (keep f), dims above `beta_slow`'s interpolate (f /
// factor), a linear ramp in between.
std::vector<double> yarn_ramp(double base, int rot_dims, const RopeScaling& s) {
  auto correction_dim = [&](double n_rot) {
    return rot_dims * std::log(s.original_context / (n_rot * 2 * std::numbers::pi)) /
           (2 * std::log(base));
  };
  double lo = std::max(std::floor(correction_dim(32)), 0.0);
  double hi = std::min(std::ceil(correction_dim(1)), rot_dims - 1.0);
  if (lo == hi) hi += 0.001;
  std::vector<double> ramp(rot_dims / 2);
  for (int i = 0; i < rot_dims / 2; ++i) ramp[i] = std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
  return ramp;  // 0 = extrapolate, 1 = interpolate
}

}  // namespace

std::vector<float> rope_inv_freqs(float base, int rot_dims, const RopeScaling& s) {
  KVZ_CHECK(rot_dims > 0 && rot_dims % 2 == 0 && base > 1, "rope: base {} rot_dims {}", base,
            rot_dims);
  KVZ_CHECK(s.type == RopeScaling::Type::kNone || s.factor > 0, "rope: scaling factor {}",
            s.factor);
  std::vector<double> ramp;
  if (s.type == RopeScaling::Type::kYarn) ramp = yarn_ramp(base, rot_dims, s);
  std::vector<float> out(rot_dims / 2);
  for (int i = 0; i < rot_dims / 2; ++i) {
    double f = std::pow(double(base), -2.0 * i / rot_dims);
    switch (s.type) {
      case RopeScaling::Type::kNone:
        break;
      case RopeScaling::Type::kLinear:
        f /= s.factor;
        break;
      case RopeScaling::Type::kLlama3:
        f = llama3_scale(f, s);
        break;
      case RopeScaling::Type::kYarn:
        f = f / s.factor * ramp[i] + f * (1 - ramp[i]);
        break;
    }
    out[i] = static_cast<float>(f);
  }
  return out;
}

float rope_attn_factor(const RopeScaling& s) {
  if (s.type != RopeScaling::Type::kYarn || s.factor <= 1) return 1.0f;
  return static_cast<float>(0.1 * std::log(double(s.factor)) + 1.0);
}

namespace {

struct RopeDims {
  int64_t n_tokens, n_heads, head_dim, rot_dims;
};

RopeDims check_rope(const RopeArgs& a) {
  KVZ_CHECK(a.x.dtype() == DType::kF32 && a.pos.dtype() == DType::kI32 &&
                a.inv_freq.dtype() == DType::kF32,
            "rope: x f32, pos i32, inv_freq f32; got {} {} {}", a.x.shape_str(), a.pos.shape_str(),
            a.inv_freq.shape_str());
  RopeDims d{a.pos.numel(), 0, a.x.cols(), a.rot_dims ? a.rot_dims : a.x.cols()};
  d.n_heads = d.n_tokens ? a.x.rows() / d.n_tokens : 0;
  KVZ_CHECK(d.n_heads * d.n_tokens == a.x.rows(), "rope: x {} for {} positions", a.x.shape_str(),
            d.n_tokens);
  KVZ_CHECK(d.rot_dims > 0 && d.rot_dims % 2 == 0 && d.rot_dims <= d.head_dim &&
                a.inv_freq.numel() == d.rot_dims / 2,
            "rope: rot_dims {} head_dim {} inv_freq {}", d.rot_dims, d.head_dim,
            a.inv_freq.shape_str());
  return d;
}

}  // namespace

int rope_rot_dims(const RopeArgs& a) { return static_cast<int>(check_rope(a).rot_dims); }

void rope(Recorder& rec, const RopeArgs& a) {
  const RopeDims d = check_rope(a);
  if (a.x.empty()) return;
  if (rec.is_cpu()) return cpu::rope_ref(a);
  constexpr uint32_t kWg = 64;
  struct Push {
    uint32_t n_rows, n_heads, head_dim, rot_dims, rows_per_y;
    float attn_factor;
  } push{static_cast<uint32_t>(d.n_tokens * d.n_heads),
         static_cast<uint32_t>(d.n_heads),
         static_cast<uint32_t>(d.head_dim),
         static_cast<uint32_t>(d.rot_dims),
         0,
         a.attn_factor};
  const uint32_t neox = a.style == RopeStyle::kNeox ? 1 : 0;
  Grid grid = row_grid(push.n_rows, push.rows_per_y);
  rec.dispatch({ShaderId::kRope, {kWg, neox}}, {a.x, a.pos, a.inv_freq}, push, grid);
}

namespace cpu {
void rope_ref(const RopeArgs& a) {
  const RopeDims d = check_rope(a);
  const int32_t* pos = a.pos.host<int32_t>();
  const float* inv_freq = a.inv_freq.host<float>();
  const int64_t half = d.rot_dims / 2;
  for (int64_t t = 0; t < d.n_tokens; ++t) {
    for (int64_t h = 0; h < d.n_heads; ++h) {
      float* x = a.x.host<float>() + (t * d.n_heads + h) * d.head_dim;
      for (int64_t i = 0; i < half; ++i) {
        // The angle is the fp32 product, as HF computes it; cos/sin of it are then exact.
        const float theta = static_cast<float>(pos[t]) * inv_freq[i];
        const double c = std::cos(double(theta)) * a.attn_factor;
        const double s = std::sin(double(theta)) * a.attn_factor;
        const int64_t i0 = a.style == RopeStyle::kNeox ? i : 2 * i;
        const int64_t i1 = a.style == RopeStyle::kNeox ? i + half : 2 * i + 1;
        const double x0 = x[i0], x1 = x[i1];
        x[i0] = static_cast<float>(x0 * c - x1 * s);
        x[i1] = static_cast<float>(x0 * s + x1 * c);
      }
    }
  }
}
}  // namespace cpu

}  // namespace kvz
