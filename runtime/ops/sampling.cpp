// Argmax and top-k / top-p sampling: validation and dispatch; CPU references, which define the
// exact sampling semantics (runtime/ops).
#include "runtime/ops/sampling.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <vector>

#include "runtime/ops/row_grid.h"

namespace kvz {
namespace {

void check_logits(const Tensor& logits, const Tensor& out, const char* what) {
  KVZ_CHECK(logits.dtype() == DType::kF32 && out.dtype() == DType::kI32 &&
                out.numel() == logits.rows() && logits.cols() > 0 && logits.cols() < (1 << 24),
            "{}: logits {} out {}", what, logits.shape_str(), out.shape_str());
}

}  // namespace

void argmax(Recorder& rec, const ArgmaxArgs& a) {
  check_logits(a.logits, a.out, "argmax");
  if (a.out.empty()) return;
  if (rec.is_cpu()) return cpu::argmax_ref(a);
  // One row (a decode step) is a chain of load latencies: as many threads as the device allows.
  const uint32_t wg =
      std::min<uint32_t>(1024, std::bit_floor(rec.caps().max_workgroup_invocations));
  struct Push {
    uint32_t n_rows, n_vocab, rows_per_y;
  } push{static_cast<uint32_t>(a.logits.rows()), static_cast<uint32_t>(a.logits.cols()), 0};
  Grid grid = row_grid(push.n_rows, push.rows_per_y);
  rec.dispatch({ShaderId::kArgmax, {wg}}, {a.logits, a.out}, push, grid);
}

void sample(Recorder& rec, const SampleArgs& a) {
  check_logits(a.logits, a.out, "sample");
  KVZ_CHECK(a.uniform.dtype() == DType::kF32 && a.uniform.numel() == a.out.numel() &&
                a.top_k >= 0 && a.top_p > 0,
            "sample: uniform {} top_k {} top_p {}", a.uniform.shape_str(), a.top_k, a.top_p);
  if (a.temperature <= 0) return argmax(rec, {a.logits, a.out});  // greedy
  if (a.out.empty()) return;
  if (rec.is_cpu()) return cpu::sample_ref(a);
  // Radix select with subgroup sums (shaders/sample_radix.comp) where the device has subgroup
  // arithmetic: as many threads as allowed, at most 128 subgroups; else bisection on 256 threads.
  const DeviceCaps& caps = rec.caps();
  const uint32_t min_sg = caps.subgroup_size_control && caps.subgroup_size_min > 0
                              ? caps.subgroup_size_min
                              : caps.subgroup_size;
  const uint32_t radix_wg = std::min<uint32_t>(
      {1024, std::bit_floor(std::max<uint32_t>(caps.max_workgroup_invocations, 1)),
       128 * std::bit_floor(std::max<uint32_t>(min_sg, 1))});
  const bool radix = caps.subgroup_arith && radix_wg >= 32 && rec.tuning().sampling.radix;
  constexpr uint32_t kWg = 256;
  struct Push {
    uint32_t n_rows, n_vocab, rows_per_y, top_k;
    float inv_temperature, top_p;
  } push{static_cast<uint32_t>(a.logits.rows()),
         static_cast<uint32_t>(a.logits.cols()),
         0,
         static_cast<uint32_t>(a.top_k),
         1.0f / a.temperature,
         a.top_p};
  Grid grid = row_grid(push.n_rows, push.rows_per_y);
  if (radix)
    rec.dispatch({ShaderId::kSampleRadix, {radix_wg}}, {a.logits, a.uniform, a.out}, push, grid);
  else
    rec.dispatch({ShaderId::kSample, {kWg}}, {a.logits, a.uniform, a.out}, push, grid);
}

namespace cpu {

void argmax_ref(const ArgmaxArgs& a) {
  check_logits(a.logits, a.out, "argmax");
  const int64_t n_vocab = a.logits.cols();
  for (int64_t r = 0; r < a.logits.rows(); ++r) {
    const float* l = a.logits.host<float>() + r * n_vocab;
    int64_t best = -1;
    for (int64_t j = 0; j < n_vocab; ++j)
      if (!std::isnan(l[j]) && (best < 0 || l[j] > l[best])) best = j;
    a.out.host<int32_t>()[r] = static_cast<int32_t>(std::max<int64_t>(best, 0));
  }
}

// p = softmax(logits / T); order tokens by (p desc, index asc); keep the first top_k (0 = all);
// keep the smallest prefix whose mass is >= top_p of the kept mass (at least one token); pick the
// first token in that order whose cumulative mass exceeds uniform * (mass of the survivors).
void sample_ref(const SampleArgs& a) {
  check_logits(a.logits, a.out, "sample");
  if (a.temperature <= 0) return argmax_ref({a.logits, a.out});
  const int64_t n_vocab = a.logits.cols();
  std::vector<double> w(n_vocab);
  std::vector<int32_t> order(n_vocab);
  for (int64_t r = 0; r < a.logits.rows(); ++r) {
    const float* l = a.logits.host<float>() + r * n_vocab;
    const double m = *std::max_element(l, l + n_vocab);
    for (int64_t j = 0; j < n_vocab; ++j) w[j] = std::exp((l[j] - m) / a.temperature);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return w[x] > w[y]; });
    int64_t keep = a.top_k > 0 ? std::min<int64_t>(a.top_k, n_vocab) : n_vocab;
    if (a.top_p < 1) {
      double total = 0, cum = 0;
      for (int64_t i = 0; i < keep; ++i) total += w[order[i]];
      for (int64_t i = 0; i < keep; ++i) {
        cum += w[order[i]];
        if (cum >= a.top_p * total) {
          keep = i + 1;
          break;
        }
      }
    }
    double total = 0;
    for (int64_t i = 0; i < keep; ++i) total += w[order[i]];
    const double target = std::min(double(a.uniform.host<float>()[r]), 1.0) * total;
    int32_t pick = order[keep - 1];
    double cum = 0;
    for (int64_t i = 0; i < keep; ++i) {
      cum += w[order[i]];
      if (cum > target) {
        pick = order[i];
        break;
      }
    }
    a.out.host<int32_t>()[r] = pick;
  }
}

}  // namespace cpu
}  // namespace kvz
