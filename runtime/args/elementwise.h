// Arguments and CPU references of the elementwise ops (runtime/args: the data half of
// runtime/ops/elementwise.h, below both runtime/ops and runtime/cpu so that the CPU backend needs
// no op header).
#pragma once

#include "runtime/tensor.h"

namespace kvz {

// y = a + b, all f32 of the same shape; y may alias a.
struct AddArgs {
  Tensor a, b, y;
};

namespace cpu {
void add_ref(const AddArgs& args);
}

}  // namespace kvz
