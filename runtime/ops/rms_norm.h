// RMSNorm with an optional weight offset (Gemma's (1 + w) convention) (runtime/ops).
#pragma once

#include "runtime/args/rms_norm.h"
#include "runtime/recorder.h"

namespace kvz {

// RmsNormArgs: runtime/args/rms_norm.h.
void rms_norm(Recorder& rec, const RmsNormArgs& args);

}  // namespace kvz
