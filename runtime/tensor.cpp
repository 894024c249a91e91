// Tensor view helpers (runtime/).
#include "runtime/tensor.h"

#include <fmt/format.h>

namespace kvz {

Tensor::Tensor(BufferView mem, DType dtype, std::initializer_list<int64_t> shape)
    : mem_(mem), dtype_(dtype), ndim_(static_cast<int>(shape.size())) {
  KVZ_CHECK(ndim_ <= kMaxDims, "at most {} dims", kMaxDims);
  int i = 0;
  for (int64_t d : shape) shape_[i++] = d;
  KVZ_CHECK(nbytes() <= mem_.size_bytes, "tensor {} needs {} bytes, view has {}", shape_str(),
            nbytes(), mem_.size_bytes);
}

Tensor::Tensor(BufferView mem, DType dtype, const std::array<int64_t, kMaxDims>& shape, int ndim)
    : mem_(mem), dtype_(dtype), shape_(shape), ndim_(ndim) {
  KVZ_CHECK(ndim_ <= kMaxDims);
  KVZ_CHECK(nbytes() <= mem_.size_bytes, "tensor {} needs {} bytes, view has {}", shape_str(),
            nbytes(), mem_.size_bytes);
}

int64_t Tensor::dim(int i) const {
  if (i < 0) i += ndim_;
  KVZ_CHECK(i >= 0 && i < ndim_, "dim {} of a {}-d tensor", i, ndim_);
  return shape_[i];
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= shape_[i];
  return n;
}

size_t Tensor::nbytes() const {
  if (ndim_ == 0) return dtype_info(dtype_).block_bytes;
  return row_bytes(dtype_, cols()) * static_cast<size_t>(rows());
}

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (int i = 0; i < ndim_; ++i) s += fmt::format("{}{}", i ? ", " : "", shape_[i]);
  return s + "] " + std::string(dtype_name(dtype_));
}

Tensor Tensor::reshape(std::initializer_list<int64_t> shape) const {
  Tensor t(mem_, dtype_, shape);
  KVZ_CHECK(t.numel() == numel(), "reshape {} -> {}", shape_str(), t.shape_str());
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t n) const {
  KVZ_CHECK(ndim_ >= 1 && begin >= 0 && n >= 0 && begin + n <= shape_[0], "slice [{}, +{}) of {}",
            begin, n, shape_str());
  size_t per = shape_[0] ? nbytes() / static_cast<size_t>(shape_[0]) : 0;
  BufferView v = mem_;
  v.offset_bytes += per * static_cast<size_t>(begin);
  v.size_bytes = per * static_cast<size_t>(n);
  if (v.host) v.host += per * static_cast<size_t>(begin);
  auto s = shape_;
  s[0] = n;
  return Tensor(v, dtype_, s, ndim_);
}

bool same_shape(const Tensor& a, const Tensor& b) {
  if (a.ndim() != b.ndim()) return false;
  for (int i = 0; i < a.ndim(); ++i)
    if (a.dim(i) != b.dim(i)) return false;
  return true;
}

}  // namespace kvz
