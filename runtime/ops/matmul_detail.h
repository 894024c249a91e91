// Internal entry points of the matmul op for tests and benchmarks (runtime/ops): run a variant the
// device would not pick by itself, so every variant stays tested on every device.
#pragma once

#include "runtime/ops/matmul.h"

namespace kvz::detail {

struct MatmulOptions {
  bool allow_subgroup = true;  // matvec: subgroupAdd reduction when the device supports it
};
void matmul_with(Recorder& rec, const MatmulArgs& args, const MatmulOptions& opt);

}  // namespace kvz::detail
