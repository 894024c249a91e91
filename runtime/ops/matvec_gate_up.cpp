// The decode gated MLP's gate/up matvecs and activation: validation, the fused dispatch or the
// unfused ops (runtime/ops).
#include "runtime/ops/matvec_gate_up.h"

#include <algorithm>

#include "runtime/ops/activation.h"
#include "runtime/ops/matmul.h"

namespace kvz {

bool matvec_gate_up_fused(const Recorder& rec, const MatvecGateUpArgs& a) {
  const DeviceCaps& caps = rec.caps();
  const int64_t n = a.w_gate.rows(), k = a.w_gate.cols();
  const uint64_t range = caps.max_storage_buffer_range;
  return !rec.is_cpu() && a.w_gate.dtype() == DType::kQ4_K && a.w_up.dtype() == DType::kQ4_K &&
         a.x8.defined() && a.y8.defined() && n % 256 == 0 && k % 256 == 0 &&
         a.x8.nbytes() >= 4 * uint64_t(matvec_x8_elems(k)) && quantize_x8_fits(a.y, a.y8) &&
         a.w_gate.nbytes() <= range && a.w_up.nbytes() <= range &&
         rec.tuning().matmul.fused_gate_up &&
         rec.tuning().matmul.matvec_variant == 0;  // other variants are measurements of matmul
}

void matvec_gate_up(Recorder& rec, const MatvecGateUpArgs& a) {
  KVZ_CHECK(a.x.dtype() == DType::kF32 && a.y.dtype() == DType::kF32 && a.x.rows() == 1,
            "matvec_gate_up: x {} y {} (f32, one row)", a.x.shape_str(), a.y.shape_str());
  KVZ_CHECK(a.w_gate.ndim() == 2 && same_shape(a.w_gate, a.w_up) &&
                a.w_gate.dtype() == a.w_up.dtype() && a.w_gate.cols() == a.x.cols() &&
                a.y.numel() == a.w_gate.rows() && a.up.numel() == a.y.numel(),
            "matvec_gate_up: x {} w_gate {} w_up {} y {} up {}", a.x.shape_str(),
            a.w_gate.shape_str(), a.w_up.shape_str(), a.y.shape_str(), a.up.shape_str());
  KVZ_CHECK(!a.y8.defined() || quantize_x8_fits(a.y, a.y8), "matvec_gate_up: y8 {} for y {}",
            a.y8.shape_str(), a.y.shape_str());
  if (!matvec_gate_up_fused(rec, a)) {
    {
      Recorder::Concurrent group(rec);
      matmul(rec, {a.x, a.w_gate, a.y, {}, {}, a.x8});
      matmul(rec, {a.x, a.w_up, a.up, {}, {}, a.x8});
    }
    return gated_act(rec, {a.y, a.up, a.y, a.act, a.y8});
  }
  const DeviceCaps& caps = rec.caps();
  const MatmulTuning& opt = rec.tuning().matmul;
  // Teams of 64 invocations, each with 8 rows of both weights (16 where a workgroup holds fewer
  // than 256 invocations): the workgroup's 32 rows are one x8 group of y.
  const uint32_t rows_per_team = a.rows_per_team                         ? a.rows_per_team
                                 : caps.max_workgroup_invocations >= 256 ? 8
                                                                         : 16,
                 wg = 64 * 32 / rows_per_team;
  KVZ_CHECK(32 % rows_per_team == 0 && wg <= caps.max_workgroup_invocations,
            "matvec_gate_up: {} rows per team", rows_per_team);
  const bool sub = opt.allow_subgroup && caps.subgroup_arith && caps.subgroup_size >= 4 &&
                   caps.subgroup_size <= 64;
  const bool idot = opt.allow_int_dot && caps.int8_dot;
  const ShaderId id =
      sub ? (idot ? ShaderId::kMatvecGateUpQ4KSubgroupIdot : ShaderId::kMatvecGateUpQ4KSubgroup)
          : (idot ? ShaderId::kMatvecGateUpQ4KIdot : ShaderId::kMatvecGateUpQ4K);
  struct Push {
    uint32_t n, k;
  } push{uint32_t(a.w_gate.rows()), uint32_t(a.w_gate.cols())};
  const uint32_t groups = push.n / 32, gx = std::min<uint32_t>(groups, 32768);
  rec.dispatch({id, {wg, rows_per_team, static_cast<uint32_t>(a.act)}},
               {a.x8, a.w_gate, a.w_up, a.y, a.y8}, push, {gx, div_up(groups, gx)});
}

}  // namespace kvz
