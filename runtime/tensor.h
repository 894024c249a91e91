// Tensor = a typed, shaped, non-owning view into a device buffer (runtime/ public API).
// Tensors are contiguous row-major: shape[ndim-1] is the innermost dimension.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "runtime/dtype.h"
#include "runtime/error.h"

namespace kvz {

// Where a tensor's bytes live. `handle` identifies the backend buffer (a VkBuffer for Vulkan,
// unused for the CPU backend); `host` is set when the bytes are directly addressable on the CPU
// (CPU backend, or host-visible Vulkan memory such as lavapipe's).
struct BufferView {
  uint64_t handle = 0;
  size_t offset_bytes = 0;  // from the start of the backend buffer
  size_t size_bytes = 0;
  std::byte* host = nullptr;  // already offset; nullptr if not host-visible
};

class Tensor {
 public:
  static constexpr int kMaxDims = 4;

  Tensor() = default;
  Tensor(BufferView mem, DType dtype, std::initializer_list<int64_t> shape);
  Tensor(BufferView mem, DType dtype, const std::array<int64_t, kMaxDims>& shape, int ndim);

  const BufferView& mem() const { return mem_; }
  DType dtype() const { return dtype_; }
  int ndim() const { return ndim_; }
  int64_t dim(int i) const;  // negative counts from the back
  int64_t numel() const;
  int64_t cols() const { return ndim_ ? shape_[ndim_ - 1] : 1; }  // innermost
  int64_t rows() const { return cols() ? numel() / cols() : 0; }  // everything else
  size_t nbytes() const;
  bool empty() const { return numel() == 0; }
  // False for a default-constructed Tensor, which optional arguments use to mean "none".
  bool defined() const { return ndim_ > 0; }
  std::string shape_str() const;  // "[3, 64] f16"

  // Same bytes, new shape (same element count).
  Tensor reshape(std::initializer_list<int64_t> shape) const;
  // Rows [begin, begin+n) along the outermost dimension.
  Tensor slice(int64_t begin, int64_t n) const;

  template <class T>
  T* host() const {
    KVZ_CHECK(mem_.host != nullptr, "tensor {} is not host-visible", shape_str());
    return reinterpret_cast<T*>(mem_.host);
  }

 private:
  BufferView mem_;
  DType dtype_ = DType::kF32;
  std::array<int64_t, kMaxDims> shape_{};
  int ndim_ = 0;
};

bool same_shape(const Tensor& a, const Tensor& b);

}  // namespace kvz
