// The tensor-core ceiling probe (shaders/coopmat_peak.comp): matmul_coopmat's inner loop with
// nothing read from global memory, to measure what a Vulkan kernel can get from this device's
// tensor cores through a cooperative-matrix extension (bench/, `BM_coopmat_peak`). Not used by
// the model.
#pragma once

#include <cstdint>

#include "runtime/ops/coopmat.h"
#include "runtime/recorder.h"

namespace kvz::detail {

enum class CoopmatPeakMode : uint32_t {
  kRegisters = 0,          // fragments loaded once, multiply-adds on registers alone
  kShared = 1,             // every 16-deep k step loads its fragments from shared memory
  kSharedBarrier = 2,      // kShared plus a workgroup barrier per 32-deep tile (two shared stages)
  kSharedTwoBarriers = 3,  // two barriers per tile, as matmul_coopmat's one stage pays
};

// One matmul_coopmat-shaped tile per workgroup: sg_m x sg_n subgroups, each fm x fn 16x16
// fragments (the f16 matmul's default is 2 x 2 subgroups of 4 x 4: a 128 x 128 tile).
struct CoopmatPeakArgs {
  Tensor src;  // f16 [bm + bn, 32]: the x rows, then the w rows of the tile (bm = 16 fm sg_m)
  Tensor y;    // f32 [coopmat_peak_outputs(args)]: every subgroup's accumulators
  uint32_t workgroups = 1;
  uint32_t iters = 2;  // 16-deep k steps; even for the shared modes
  CoopmatPeakMode mode = CoopmatPeakMode::kRegisters;
  uint32_t sg_m = 2, sg_n = 2, fm = 4, fn = 4;
  // Shared tile pairs: 1 takes matmul_coopmat's one-stage shared memory (its default), 2 its
  // two-stage one.
  uint32_t copies = 1;
};

// Elements of y: workgroups x subgroups x fm fn fragments x 256. Fragment (i, j) of subgroup s of
// workgroup g starts at ((g sg_m sg_n + s) fm fn + i fn + j) x 256, rows of 16. Its value:
// kRegisters iters x A_i[:, 0:16] . B_j[0:16, :]; the shared modes iters / 2 x A_i . B_j over k 32,
// where A_i is rows 16 (s % sg_m fm + i).. of src and B_j[k][n] = src[bm + 16 (s / sg_m fn + j) +
// n][k].
int64_t coopmat_peak_outputs(const CoopmatPeakArgs& a);
// Tensor-core multiply-add FLOPs of one call: 2 x 16^3 per fragment product.
double coopmat_peak_flops(const CoopmatPeakArgs& a);
// Records the probe through `api` (kNv, or kKhr / kCm2 for the KHR module). Throws DeviceError
// where the device cannot run it and InputError on bad arguments.
void coopmat_peak(Recorder& rec, CoopmatApi api, const CoopmatPeakArgs& a);

}  // namespace kvz::detail
