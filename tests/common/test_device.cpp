// Shared test helpers (tests/common).
#include "tests/common/test_device.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace kvz::test {

Device* vk_device() {
  // Never destroyed (see runtime/vk/vk_instance.cpp instance()): no Vulkan teardown at exit.
  static Device* dev = [] {
    std::unique_ptr<Device> d;
    try {
      d = open_device();
    } catch (const Error& e) {
      ADD_FAILURE() << "opening the Vulkan test device failed: " << e.what();
      return static_cast<Device*>(nullptr);
    }
    if (d->kind() != BackendKind::kVulkan) d.reset();
    return d.release();
  }();
  return dev;
}

Device* vk_device_with_range(uint64_t range_bytes) {
  // Never destroyed, like vk_device().
  static std::map<uint64_t, Device*> devices;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (!vk_device()) return nullptr;
  auto it = devices.find(range_bytes);
  if (it != devices.end()) return it->second;
  const char* old = std::getenv("KVZ_MAX_STORAGE_BUFFER_RANGE");
  const std::string saved = old ? old : "";
  setenv("KVZ_MAX_STORAGE_BUFFER_RANGE", std::to_string(range_bytes).c_str(), 1);
  std::unique_ptr<Device> d;
  try {
    d = open_device();
  } catch (const Error& e) {
    ADD_FAILURE() << "opening the range-limited Vulkan device failed: " << e.what();
  }
  if (old)
    setenv("KVZ_MAX_STORAGE_BUFFER_RANGE", saved.c_str(), 1);
  else
    unsetenv("KVZ_MAX_STORAGE_BUFFER_RANGE");
  if (d && d->kind() != BackendKind::kVulkan) d.reset();
  return devices[range_bytes] = d.release();
}

Device* backend_device(bool vulkan) { return vulkan ? vk_device() : &cpu_device(); }

Device& cpu_device() {
  static std::unique_ptr<Device> dev = open_device("cpu");
  return *dev;
}

uint64_t Rng::next() { return sm_.next(); }

float Rng::uniform(float lo, float hi) {
  double u = static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
  return static_cast<float>(lo + (hi - lo) * u);
}

float Rng::normal() {
  double u1 = (static_cast<double>(next() >> 11) + 1.0) * (1.0 / 9007199254740993.0);
  double u2 = static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

std::vector<float> Rng::uniform_vec(size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (float& x : v) x = uniform(lo, hi);
  return v;
}

Tensor alloc_tensor(Device& dev, std::vector<Buffer>& keep, DType dtype,
                    std::initializer_list<int64_t> shape) {
  Tensor probe(BufferView{0, 0, SIZE_MAX, nullptr}, dtype, shape);
  keep.push_back(dev.alloc(probe.nbytes()));
  return keep.back().tensor(dtype, shape);
}

Tensor upload(Device& dev, std::vector<Buffer>& keep, DType dtype,
              std::initializer_list<int64_t> shape, const void* data) {
  Tensor t = alloc_tensor(dev, keep, dtype, shape);
  dev.upload(t, data);
  return t;
}

Tensor upload_f32(Device& dev, std::vector<Buffer>& keep, std::initializer_list<int64_t> shape,
                  const std::vector<float>& data) {
  Tensor t = alloc_tensor(dev, keep, DType::kF32, shape);
  KVZ_CHECK(static_cast<size_t>(t.numel()) == data.size());
  dev.upload(t, data.data());
  return t;
}

std::vector<float> download_f32(Device& dev, const Tensor& t) {
  KVZ_CHECK(t.dtype() == DType::kF32);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  dev.download(t, out.data());
  return out;
}

Diff compare(const std::vector<float>& got, const std::vector<float>& ref, double atol,
             double rtol) {
  Diff d;
  double err2 = 0, ref2 = 0, worst_excess = -1;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    double g = got[i], r = ref[i], e = std::abs(g - r);
    bool bad = std::isnan(g) != std::isnan(r) || e > atol + rtol * std::abs(r);
    if (std::isnan(g) && std::isnan(r)) continue;
    d.max_abs = std::max(d.max_abs, e);
    if (std::abs(r) > 0) d.max_rel = std::max(d.max_rel, e / std::abs(r));
    err2 += e * e;
    ref2 += r * r;
    double excess = e - (atol + rtol * std::abs(r));
    if (bad) d.n_bad++;
    if (excess > worst_excess || std::isnan(g)) worst_excess = excess, d.worst = i;
  }
  if (got.size() != ref.size()) d.n_bad += 1;
  d.nmse = ref2 > 0 ? err2 / ref2 : err2;
  return d;
}

::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& ref,
                                     double atol, double rtol) {
  Diff d = compare(got, ref, atol, rtol);
  if (d.n_bad == 0) return ::testing::AssertionSuccess();
  auto r = ::testing::AssertionFailure();
  r << d.n_bad << " of " << ref.size() << " elements differ (sizes " << got.size() << " vs "
    << ref.size() << "); max_abs " << d.max_abs << " max_rel " << d.max_rel << " nmse " << d.nmse
    << "; worst at " << d.worst;
  if (d.worst < got.size() && d.worst < ref.size()) {
    r << ": got " << got[d.worst] << " want " << ref[d.worst];
  }
  r << " (atol " << atol << ", rtol " << rtol << ")";
  return r;
}

void VkTest::SetUp() {
  cpu = &cpu_device();
  gpu = vk_device();
  if (!gpu) GTEST_SKIP() << "no Vulkan device";
  validation_before_ = gpu->validation_messages();
}

void VkTest::TearDown() {
  if (gpu) {
    EXPECT_EQ(gpu->validation_messages(), validation_before_) << "Vulkan validation messages";
  }
}

}  // namespace kvz::test
