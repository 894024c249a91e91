// Elementwise ops: residual add (runtime/ops).
#pragma once

#include "runtime/args/elementwise.h"
#include "runtime/recorder.h"

namespace kvz {

// AddArgs: runtime/args/elementwise.h.
void add(Recorder& rec, const AddArgs& args);

}  // namespace kvz
