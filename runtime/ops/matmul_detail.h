// Internal entry points of the matmul op for tests and benchmarks (runtime/ops): run a variant the
// device would not pick by itself, so every variant stays tested on every device.
#pragma once

#include <utility>

#include "runtime/ops/coopmat.h"
#include "runtime/ops/matmul.h"

namespace kvz::detail {

// matmul() with `opt` in place of the device's MatmulTuning (runtime/tuning.h). `x8_scratch`:
// variant 4's x rounded to int8 (>= matvec_x8_elems(k) 32-bit elements, any dtype).
void matmul_with(Recorder& rec, const MatmulArgs& args, const MatmulTuning& opt,
                 const Tensor& x8_scratch = {});
// y = f16(w) for a block-quantised w [n, k] into y [n, k] f16 (GPU only): the matmul's pre-pass.
void dequantize_f16(Recorder& rec, const Tensor& w, const Tensor& y);
// The matvec variant matmul_with(opt) runs for weights of type t (4 without x8 runs as 3).
uint32_t matvec_variant(DType t, const MatmulTuning& opt, bool has_x8);

// The default matmul_coopmat tile (rows of x, rows of w) for m tokens by n outputs of weight type
// t on a device with `slots` resident 128 x 128 workgroups (Tuning::occupancy_units x
// MatmulTuning::coopmat_plain_per_unit; 0: not known).
std::pair<uint32_t, uint32_t> coopmat_default_tile(DType t, int64_t m, int64_t n, uint32_t slots);

// Fewest tokens for which matmul() picks the cooperative-matrix kernel.
constexpr int64_t kCoopmatMinTokens = 32;
// Whether `caps` can run matmul_coopmat through `api` for weights of type t (ignores the
// tuning; matmul() itself uses coopmat_api(), runtime/ops/coopmat.h).
bool coopmat_matmul_supported(const DeviceCaps& caps, DType t, CoopmatApi api);

}  // namespace kvz::detail
