// Arguments of the fused decode gate/up/activation op (runtime/args: the data half of
// runtime/ops/matvec_gate_up.h). It has no CPU reference of its own: the CPU backend runs the
// ops it replaces.
#pragma once

#include <cstdint>

#include "runtime/args/activation.h"
#include "runtime/tensor.h"

namespace kvz {

// y = act(x . w_gate^T) * (x . w_up^T) for one token.
// x: [1, d_model] f32; w_gate, w_up: [d_ff, d_model] of one weight type; y: [1, d_ff] f32;
// up: [1, d_ff] f32 scratch (written where the op runs unfused); x8: optional, x rounded by
// quantize_x8 (or rms_norm's x8), as MatmulArgs::x8; y8: optional, y rounded to int8 for the down
// projection (as GatedActArgs::x8, d_ff % 256 == 0).
// One dispatch (shaders/matvec_gate_up.comp) where matvec_gate_up_fused() holds: three dependent
// steps of a decode layer become one. Elsewhere (CPU backend, other weight types, no x8 or y8)
// the ops it replaces: the two matmuls side by side, then gated_act. Both give the same values up
// to the order of fp32 sums.
struct MatvecGateUpArgs {
  Tensor x, w_gate, w_up, y, up;
  Activation act = Activation::kSilu;
  Tensor x8 = {}, y8 = {};
  // Rows of each weight per team of 64 invocations in the fused kernel (1, 2, 4, 8, 16 or 32;
  // 0: the rule in matvec_gate_up.cpp). Benchmarks compare them.
  uint32_t rows_per_team = 0;
};
}  // namespace kvz
