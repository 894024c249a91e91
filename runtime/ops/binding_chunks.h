// Row chunks of a tensor that each fit one storage-buffer binding (runtime/ops, internal helper).
// A Vulkan binding sees at most maxStorageBufferRange bytes (lavapipe: 128 MiB), less than some
// weights (a 262144-row embedding, a tied output head). Such a tensor stays one contiguous
// allocation; ops bind it as several row slices instead, each within the range and starting at an
// aligned offset, and dispatch once per slice. Rows are independent in every DType (quantised
// blocks run along the innermost dimension), so a row slice is always a valid tensor.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/device.h"

namespace kvz {

// Rows [row0, row0 + t.dim(0)) of the whole tensor.
struct RowChunk {
  int64_t row0 = 0;
  Tensor t;
};

// Slices of `t` along its outermost dimension, in order, covering it exactly: one chunk (t itself)
// when t fits the device's maxStorageBufferRange, else as few as fit. Every chunk but the last has
// a row count that is a multiple of 16 whose byte size keeps the binding offset aligned (to
// minStorageBufferOffsetAlignment and 16 bytes). Throws DeviceError when not even that many rows
// fit the range.
std::vector<RowChunk> binding_chunks(const Tensor& t, const DeviceCaps& caps);

}  // namespace kvz
