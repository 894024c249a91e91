// Internal entry points of the matmul op for tests and benchmarks (runtime/ops): run a variant the
// device would not pick by itself, so every variant stays tested on every device.
#pragma once

#include <array>

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
  // Block weights with MatmulArgs::w_scratch and m >= 256: dequantise to f16 first (matmul.h).
  bool allow_dequant_pass = true;
  // matmul_coopmat tile raster: rows of tiles per group (0: the default, 8; 1: n fastest).
  uint32_t coopmat_group_m = 0;
  // matmul_coopmat tile {SG_M, SG_N, FM, FN, STAGES, BK} (0s: the default for m; matmul.cpp).
  std::array<uint32_t, 6> coopmat_tile = {};
  uint32_t matvec_rows = 0;     // matvec rows per workgroup (0: the default)
  uint32_t matvec_wg = 0;       // matvec workgroup size (0: the default)
  uint32_t matvec_variant = 0;  // matvec Q4_K thread mapping: 0 contiguous lanes, 1 the earlier one
};
void matmul_with(Recorder& rec, const MatmulArgs& args, const MatmulOptions& opt);
// y = f16(w) for a block-quantised w [n, k] into y [n, k] f16 (GPU only): the matmul's pre-pass.
void dequantize_f16(Recorder& rec, const Tensor& w, const Tensor& y);

// Fewest tokens for which matmul() picks the cooperative-matrix kernel.
constexpr int64_t kCoopmatMinTokens = 32;
// Whether `caps` can run matmul_coopmat through `api` for weights of type t (ignores the
// environment; matmul() itself uses coopmat_api(caps), runtime/ops/coopmat.h).
bool coopmat_matmul_supported(const DeviceCaps& caps, DType t, CoopmatApi api);

}  // namespace kvz::detail
