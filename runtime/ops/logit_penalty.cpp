// Repetition penalty and min-p over the logits: validation and dispatch; the CPU reference, which
// defines the semantics (runtime/ops).
#include "runtime/ops/logit_penalty.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "runtime/ops/row_grid.h"

namespace kvz {
namespace {

void check(const LogitPenaltyArgs& a) {
  KVZ_CHECK(a.logits.dtype() == DType::kF32 && a.logits.cols() > 0 && a.logits.cols() < (1 << 24) &&
                a.history.dtype() == DType::kI32 && a.penalty > 0 && a.min_p >= 0 && a.min_p < 1,
            "logit_penalty: logits {} history {} penalty {} min_p {}", a.logits.shape_str(),
            a.history.shape_str(), a.penalty, a.min_p);
}

}  // namespace

bool logit_penalty_is_noop(const LogitPenaltyArgs& a) {
  return (a.penalty == 1.0f || a.history.numel() == 0) && a.min_p == 0.0f;
}

void logit_penalty(Recorder& rec, const LogitPenaltyArgs& a) {
  check(a);
  if (a.logits.rows() == 0 || logit_penalty_is_noop(a)) return;
  if (rec.is_cpu()) return cpu::logit_penalty_ref(a);
  // One workgroup per row: the history is short, the min-p pass is one read and one write of the
  // row after a max reduction.
  const uint32_t wg = std::min<uint32_t>(256, std::bit_floor(rec.caps().max_workgroup_invocations));
  struct Push {
    uint32_t n_rows, n_vocab, rows_per_y, n_hist;
    float penalty, log_min_p;  // log_min_p: -inf = min-p off
  } push{static_cast<uint32_t>(a.logits.rows()),
         static_cast<uint32_t>(a.logits.cols()),
         0,
         static_cast<uint32_t>(a.penalty == 1.0f ? 0 : a.history.numel()),
         a.penalty,
         a.min_p > 0 ? std::log(a.min_p) : -std::numeric_limits<float>::infinity()};
  Grid grid = row_grid(push.n_rows, push.rows_per_y);
  // An empty history still needs a valid binding: bind the logits' buffer as a stand-in (n_hist 0).
  const Tensor hist = a.history.numel() > 0 ? a.history : a.logits;
  rec.dispatch({ShaderId::kLogitPenalty, {wg}}, {a.logits, hist}, push, grid);
}

namespace cpu {

void logit_penalty_ref(const LogitPenaltyArgs& a) {
  check(a);
  const int64_t n_vocab = a.logits.cols();
  const int32_t* hist = a.history.numel() > 0 ? a.history.host<int32_t>() : nullptr;
  for (int64_t r = 0; r < a.logits.rows(); ++r) {
    float* l = a.logits.host<float>() + r * n_vocab;
    std::unordered_set<int32_t> seen;
    for (int64_t i = 0; a.penalty != 1.0f && i < a.history.numel(); ++i) {
      const int32_t t = hist[i];
      if (t < 0 || t >= n_vocab || !seen.insert(t).second) continue;
      l[t] = l[t] > 0 ? l[t] / a.penalty : l[t] * a.penalty;
    }
    if (a.min_p <= 0) continue;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n_vocab; ++j)
      if (!std::isnan(l[j])) m = std::max(m, l[j]);
    const float cut = m + std::log(a.min_p);
    for (int64_t j = 0; j < n_vocab; ++j)
      if (!(l[j] >= cut)) l[j] = -std::numeric_limits<float>::infinity();
  }
}

}  // namespace cpu
}  // namespace kvz
