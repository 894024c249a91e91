// Gated MLP activations and row softmax (runtime/ops).
#pragma once

#include "runtime/args/activation.h"
#include "runtime/recorder.h"

namespace kvz {

// GatedActArgs, SoftmaxArgs: runtime/args/activation.h.
void gated_act(Recorder& rec, const GatedActArgs& args);

void softmax(Recorder& rec, const SoftmaxArgs& args);

}  // namespace kvz
