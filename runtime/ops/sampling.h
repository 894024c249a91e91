// Token selection primitives: argmax and top-k / top-p sampling (runtime/ops).
#pragma once

#include <cstdint>

#include "runtime/args/sampling.h"
#include "runtime/recorder.h"

namespace kvz {

// ArgmaxArgs, SampleArgs: runtime/args/sampling.h.
void argmax(Recorder& rec, const ArgmaxArgs& args);

void sample(Recorder& rec, const SampleArgs& args);

}  // namespace kvz
