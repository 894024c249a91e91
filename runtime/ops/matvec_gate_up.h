// The decode gated MLP's gate and up projections and its activation in one op (runtime/ops).
#pragma once

#include "runtime/args/matvec_gate_up.h"
#include "runtime/recorder.h"

namespace kvz {

// MatvecGateUpArgs: runtime/args/matvec_gate_up.h.
void matvec_gate_up(Recorder& rec, const MatvecGateUpArgs& args);
// Whether matvec_gate_up runs as one dispatch: MatmulTuning::fused_gate_up (KVZ_FUSED_GATE_UP),
// Vulkan, Q4_K weights each within one binding, x8 and y8 given, d_model and d_ff multiples of
// 256, the default matvec variant.
bool matvec_gate_up_fused(const Recorder& rec, const MatvecGateUpArgs& args);

}  // namespace kvz
