// Internal entry points of the matmul op for tests and benchmarks (runtime/ops): run a variant the
// device would not pick by itself, so every variant stays tested on every device.
#pragma once

#include <array>
#include <utility>

#include "runtime/ops/coopmat.h"
#include "runtime/ops/matmul.h"

namespace kvz::detail {

struct MatmulOptions {
  bool allow_subgroup = true;  // matvec: subgroupAdd reduction when the device supports it
  // m > 1: tensor-core matmul_coopmat when coopmat_api() is not off and m >= kCoopmatMinTokens
  // (never with KVZ_NO_COOPMAT=1 or KVZ_COOPMAT=off). Its x and w are rounded to f16, so it needs
  // f16 tolerances.
  bool allow_coopmat = true;
  bool force_coopmat = false;  // tests: use it for any m > 1 wherever coopmat_api() allows
  // With the cm2 api, f16 weights multiply in shaders/matmul_cm2.comp (otherwise only with
  // KVZ_CM2_MATMUL=1: it is slower than the KHR kernel on the H100; matmul.cpp).
  bool cm2_matmul = false;
  // Block weights with MatmulArgs::w_scratch and m >= 256: dequantise to f16 first (matmul.h).
  bool allow_dequant_pass = true;
  // matmul_coopmat tile raster: rows of tiles per group (0: the default, 8; 1: n fastest).
  uint32_t coopmat_group_m = 0;
  // matmul_coopmat tile {SG_M, SG_N, FM, FN, STAGES, BK} (0s: the default for m; matmul.cpp).
  std::array<uint32_t, 6> coopmat_tile = {};
  uint32_t matvec_rows = 0;  // matvec rows per workgroup (0: the default)
  uint32_t matvec_wg = 0;    // matvec workgroup size (0: the default)
  // matvec Q4_K variant (shaders/matvec.comp, shaders/matvec_wide.comp): 0 contiguous lanes (the
  // default), 1 the earlier mapping, 2 64-value units per thread with float nibbles, 3 the same
  // units with x rounded to int8 per 32 values and integer dot products (needs a tolerance for
  // that rounding: amax_32 / 254 per x value), 4 variant 3 on x rounded once per call into
  // matvec_x8 (shaders/quantize_x8.comp; without that scratch variant 3 runs). Variant 4 records
  // two dependent dispatches: never inside a Recorder::Concurrent group (the forward pass groups
  // its q/k/v and gate/up matmuls).
  uint32_t matvec_variant = 0;
  bool matvec_env = true;     // KVZ_MATVEC_VARIANT=1..4 replaces Q4_K variant 0 (measurements)
  bool allow_int_dot = true;  // variants 3, 4: OpSDot where DeviceCaps::int8_dot, else integer math
  Tensor matvec_x8 = {};      // variant 4 scratch: >= matvec_x8_elems(k) 32-bit elements, any dtype
};
void matmul_with(Recorder& rec, const MatmulArgs& args, const MatmulOptions& opt);
// y = f16(w) for a block-quantised w [n, k] into y [n, k] f16 (GPU only): the matmul's pre-pass.
void dequantize_f16(Recorder& rec, const Tensor& w, const Tensor& y);
// The matvec variant matmul_with(opt) runs for weights of type t (KVZ_MATVEC_VARIANT applied;
// 4 without opt.matvec_x8 runs as 3).
uint32_t matvec_variant(DType t, const MatmulOptions& opt);

// The default matmul_coopmat tile (rows of x, rows of w) for m tokens by n outputs of weight type
// t on a device with `units` occupancy units (occupancy_units(); 0: not known).
std::pair<uint32_t, uint32_t> coopmat_default_tile(DType t, int64_t m, int64_t n, uint32_t units);

// Fewest tokens for which matmul() picks the cooperative-matrix kernel.
constexpr int64_t kCoopmatMinTokens = 32;
// Whether `caps` can run matmul_coopmat through `api` for weights of type t (ignores the
// environment; matmul() itself uses coopmat_api(caps), runtime/ops/coopmat.h).
bool coopmat_matmul_supported(const DeviceCaps& caps, DType t, CoopmatApi api);

}  // namespace kvz::detail
