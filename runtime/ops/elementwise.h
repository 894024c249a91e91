// Elementwise ops: residual add (runtime/ops).
#pragma once

#include "runtime/recorder.h"

namespace kvz {

// y = a + b, all f32 of the same shape; y may alias a.
struct AddArgs {
  Tensor a, b, y;
};
void add(Recorder& rec, const AddArgs& args);

namespace cpu {
void add_ref(const AddArgs& args);
}

}  // namespace kvz
