// Grid for "one workgroup per row" kernels with more rows than one grid dimension holds
// (runtime/ops, internal helper). Vulkan guarantees only 65535 workgroups per dimension, so rows
// spill into y; a shader recovers row = gl_WorkGroupID.y * rows_per_y + gl_WorkGroupID.x and
// returns when row >= n_rows (the last y slice may be partial).
#pragma once

#include <algorithm>
#include <cstdint>

#include "runtime/recorder.h"

namespace kvz {

inline Grid row_grid(uint32_t n_rows, uint32_t& rows_per_y) {
  rows_per_y = std::max<uint32_t>(1, std::min<uint32_t>(n_rows, 65535));
  return {rows_per_y, div_up(n_rows, rows_per_y)};
}

}  // namespace kvz
