// Shared test helpers: the Vulkan test device (validation on), the CPU device, a project RNG,
// host<->device tensor helpers and a tolerance-aware comparison that reports max-abs, max-rel,
// NMSE and the worst index.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kvzip/splitmix.h"
#include "runtime/device.h"
#include "runtime/recorder.h"

namespace kvz::test {

// The Vulkan device under test (KVZIP_DEVICE selects; default = best Vulkan device, lavapipe in
// CI), opened once; nullptr when no Vulkan device exists.
Device* vk_device();
// The Vulkan test device opened a second time with maxStorageBufferRange lowered to
// `range_bytes` (KVZ_MAX_STORAGE_BUFFER_RANGE), so that ops split tensors above it into several
// bindings; one device per distinct range, opened once. nullptr when no Vulkan device exists.
Device* vk_device_with_range(uint64_t range_bytes);
// The Vulkan test device (nullptr when there is none) or the CPU backend: for suites
// parameterised over both backends.
Device* backend_device(bool vulkan);
// The CPU backend (reference), opened once.
Device& cpu_device();

// Deterministic across standard libraries (splitmix64 + Box-Muller).
class Rng {
 public:
  explicit Rng(uint64_t seed) : sm_(seed) {}
  uint64_t next();
  float uniform(float lo = -1.0f, float hi = 1.0f);
  float normal();
  std::vector<float> uniform_vec(size_t n, float lo = -1.0f, float hi = 1.0f);

 private:
  SplitMix64 sm_;
};

// Allocates a buffer on `dev` holding `data`, kept alive in `keep`; returns a tensor over it.
Tensor upload(Device& dev, std::vector<Buffer>& keep, DType dtype,
              std::initializer_list<int64_t> shape, const void* data);
Tensor upload_f32(Device& dev, std::vector<Buffer>& keep, std::initializer_list<int64_t> shape,
                  const std::vector<float>& data);
Tensor alloc_tensor(Device& dev, std::vector<Buffer>& keep, DType dtype,
                    std::initializer_list<int64_t> shape);
std::vector<float> download_f32(Device& dev, const Tensor& t);
template <class T>
std::vector<T> download_as(Device& dev, const Tensor& t) {
  std::vector<T> out(t.nbytes() / sizeof(T));
  dev.download(t, out.data());
  return out;
}

struct Diff {
  double max_abs = 0, max_rel = 0, nmse = 0;
  size_t worst = 0;
  size_t n_bad = 0;
};
// Element i is bad if |got - ref| > atol + rtol * |ref| (or either is NaN).
Diff compare(const std::vector<float>& got, const std::vector<float>& ref, double atol,
             double rtol);
::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& ref,
                                     double atol, double rtol = 0.0);

// Base fixture for GPU-vs-reference tests: skips without Vulkan; fails on validation messages.
class VkTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  Device* gpu = nullptr;
  Device* cpu = nullptr;
  uint64_t validation_before_ = 0;
};

}  // namespace kvz::test
