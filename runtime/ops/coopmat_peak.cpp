// The tensor-core ceiling probe: argument checks and dispatch (runtime/ops/coopmat_peak.h).
#include "runtime/ops/coopmat_peak.h"

#include <fmt/format.h>

#include "runtime/error.h"

namespace kvz::detail {
namespace {
constexpr int64_t kTile = 16;   // one fragment's side
constexpr int64_t kDepth = 32;  // k of the probe's tile rows
}  // namespace

int64_t coopmat_peak_outputs(const CoopmatPeakArgs& a) {
  return int64_t(a.workgroups) * a.sg_m * a.sg_n * a.fm * a.fn * kTile * kTile;
}

double coopmat_peak_flops(const CoopmatPeakArgs& a) {
  return double(a.workgroups) * a.sg_m * a.sg_n * a.fm * a.fn * a.iters * 2.0 * kTile * kTile *
         kTile;
}

void coopmat_peak(Recorder& rec, CoopmatApi api, const CoopmatPeakArgs& a) {
  const DeviceCaps& caps = rec.caps();
  if (rec.is_cpu() || api == CoopmatApi::kOff || !coopmat_api_usable(caps, api))
    throw DeviceError(fmt::format("coopmat_peak: {} has no usable '{}' cooperative matrices",
                                  caps.name, coopmat_api_name(api)));
  const uint32_t sg = coopmat_subgroup_size(caps, api);
  const int64_t bm = kTile * a.fm * a.sg_m, bn = kTile * a.fn * a.sg_n;
  const uint32_t wg = sg * a.sg_m * a.sg_n;
  // `copies` of both tiles, rows of 5 uvec4 (matmul_coopmat's skewed stride).
  const int64_t shared = int64_t(a.copies) * (bm + bn) * 5 * 16;
  KVZ_CHECK(a.fm >= 1 && a.fn >= 1 && a.sg_m >= 1 && a.sg_n >= 1 && a.fm * a.fn <= 32 &&
                (a.copies == 1 || a.copies == 2),
            "coopmat_peak: {}x{} subgroups of {}x{} fragments, {} copies", a.sg_m, a.sg_n, a.fm,
            a.fn, a.copies);
  KVZ_CHECK(a.workgroups >= 1 && a.workgroups <= 65535 && a.iters >= 1 &&
                (a.mode == CoopmatPeakMode::kRegisters || a.iters % 2 == 0),
            "coopmat_peak: {} workgroups, {} steps (even for the shared modes)", a.workgroups,
            a.iters);
  if (wg > caps.max_workgroup_invocations || shared > caps.shared_memory_bytes)
    throw DeviceError(fmt::format(
        "coopmat_peak: a {}x{} tile needs {} invocations and {} bytes "
        "of shared memory; {} has {} and {}",
        bm, bn, wg, shared, caps.name, caps.max_workgroup_invocations, caps.shared_memory_bytes));
  KVZ_CHECK(a.src.dtype() == DType::kF16 && a.src.numel() == (bm + bn) * kDepth,
            "coopmat_peak: src {} {}, expected f16 [{}, {}]", dtype_name(a.src.dtype()),
            a.src.shape_str(), bm + bn, kDepth);
  KVZ_CHECK(a.y.dtype() == DType::kF32 && a.y.numel() == coopmat_peak_outputs(a),
            "coopmat_peak: y {} {}, expected f32 [{}]", dtype_name(a.y.dtype()), a.y.shape_str(),
            coopmat_peak_outputs(a));
  const Kernel k{uses_khr_modules(api) ? ShaderId::kCoopmatPeakKhr : ShaderId::kCoopmatPeak,
                 {wg, a.sg_m, a.sg_n, a.fm, a.fn, static_cast<uint32_t>(a.mode), a.copies},
                 coopmat_required_subgroup_size(caps, api)};
  struct Push {
    uint32_t iters, copy_mask;
  } push{a.iters, a.copies - 1};
  rec.dispatch(k, {a.src, a.y}, push, {a.workgroups});
}

}  // namespace kvz::detail
