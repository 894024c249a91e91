// Row chunks within maxStorageBufferRange (runtime/ops): see binding_chunks.h.
#include "runtime/ops/binding_chunks.h"

#include <algorithm>
#include <numeric>

namespace kvz {

std::vector<RowChunk> binding_chunks(const Tensor& t, const DeviceCaps& caps) {
  const uint64_t range = caps.max_storage_buffer_range;
  if (t.ndim() == 0 || t.nbytes() <= range) return {{0, t}};
  const int64_t rows = t.dim(0);
  const uint64_t row_bytes = t.nbytes() / static_cast<uint64_t>(rows);
  // Rows per step: a multiple of 16 (keeps the column offsets of a split output 64-byte aligned)
  // whose bytes are a multiple of the offset alignment (both powers of two).
  const uint64_t align = std::max<uint64_t>(caps.storage_offset_alignment, 16);
  const uint64_t step = std::max<uint64_t>(align / std::gcd(row_bytes, align), 16);
  const uint64_t per_chunk = range / row_bytes / step * step;
  if (per_chunk == 0)
    throw DeviceError(fmt::format(
        "tensor {} cannot be split into bindings within maxStorageBufferRange {} of {}: {} rows "
        "of {} bytes is the smallest aligned chunk",
        t.shape_str(), range, caps.name, step, row_bytes));
  std::vector<RowChunk> out;
  for (int64_t r = 0; r < rows; r += static_cast<int64_t>(per_chunk)) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(per_chunk), rows - r);
    out.push_back({r, t.slice(r, n)});
  }
  return out;
}

}  // namespace kvz
