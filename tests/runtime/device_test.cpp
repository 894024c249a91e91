// Device, memory and recorder basics (tests/runtime).
#include <cstdlib>
#include <cstring>

#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

using DeviceTest = VkTest;

TEST_F(DeviceTest, ValidationLayerIsOnWhenRequested) {
  const char* env = std::getenv("KVZ_VALIDATION");
  if (!env || std::strcmp(env, "0") == 0) GTEST_SKIP() << "KVZ_VALIDATION not set";
  EXPECT_TRUE(gpu->validation_enabled())
      << "KVZ_VALIDATION=1 but the validation layer is not active";
}

TEST_F(DeviceTest, UploadDownloadRoundTripsAndCopies) {
  Rng rng(3);
  for (size_t n : {size_t{1}, size_t{1000}, size_t{3} << 20}) {
    auto v = rng.uniform_vec(n);
    std::vector<Buffer> keep;
    Tensor a = upload_f32(*gpu, keep, {static_cast<int64_t>(n)}, v);
    Tensor b = alloc_tensor(*gpu, keep, DType::kF32, {static_cast<int64_t>(n)});
    Recorder rec(*gpu);
    rec.copy(a, b);
    rec.finish();
    EXPECT_EQ(download_f32(*gpu, b), v);
  }
}

// Recorder::upload lands in stream order: a copy recorded between two uploads into the same
// buffer sees the first, a later copy the second, across several submits that reuse the ring's
// staging (sizes below and above one staging buffer), with no finish in between.
void check_stream_uploads(Device& dev) {
  Rng rng(5);
  Recorder rec(dev);
  std::vector<Buffer> keep;
  std::vector<std::vector<float>> sent;
  std::vector<Tensor> seen;
  for (int round = 0; round < 5; ++round) {
    const size_t n = round % 2 ? size_t{100000} : size_t{37};  // 400 KB > 256 KiB staging
    Tensor a = alloc_tensor(dev, keep, DType::kF32, {static_cast<int64_t>(n)});
    for (int k = 0; k < 2; ++k) {
      sent.push_back(rng.uniform_vec(n));
      rec.upload(a.mem(), sent.back().data(), n * sizeof(float));
      seen.push_back(alloc_tensor(dev, keep, DType::kF32, {static_cast<int64_t>(n)}));
      rec.copy(a, seen.back());
    }
    rec.submit();
  }
  rec.finish();
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(download_f32(dev, seen[i]), sent[i]) << i;
}
TEST_F(DeviceTest, RecorderUploadsLandInStreamOrder) { check_stream_uploads(*gpu); }

// Uploads back to back (no barrier between disjoint ones): disjoint ranges all land, and a later
// upload over part of an earlier one wins there, as recorded.
TEST_F(DeviceTest, BackToBackUploadsKeepTheirOrder) {
  std::vector<Buffer> keep;
  Tensor a = alloc_tensor(*gpu, keep, DType::kF32, {64});
  Recorder rec(*gpu);
  std::vector<float> want(64);
  auto put = [&](int64_t at, int64_t n, float base) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = want[at + i] = base + float(i);
    rec.upload(a.slice(at, n).mem(), v.data(), v.size() * 4);
  };
  put(0, 16, 100);
  put(16, 16, 200);
  put(32, 32, 300);
  put(8, 16, 400);  // over the first two
  put(20, 4, 500);  // over the last one
  put(60, 4, 600);
  rec.finish();
  EXPECT_EQ(download_f32(*gpu, a), want);
}
TEST(CpuDevice, RecorderUploadsLandInStreamOrder) { check_stream_uploads(cpu_device()); }

TEST_F(DeviceTest, AllocationsAreReusedAndAccounted) {
  uint64_t before = gpu->bytes_in_use();
  {
    Buffer a = gpu->alloc(1000), b = gpu->alloc(5000);
    EXPECT_GE(gpu->bytes_in_use(), before + 6000);
    EXPECT_NE(a.view().offset_bytes + a.view().handle, b.view().offset_bytes + b.view().handle);
  }
  EXPECT_EQ(gpu->bytes_in_use(), before);
}

TEST_F(DeviceTest, HugeAllocationThrowsOutOfMemory) {
  EXPECT_THROW(gpu->alloc(size_t{1} << 50), OutOfMemory);
}

TEST(DeviceSelection, UnknownNameIsAClearError) {
  try {
    open_device("no-such-gpu-xyz");
    FAIL() << "expected DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-gpu-xyz"), std::string::npos);
  }
}

TEST(DeviceSelection, CpuBackendAlwaysOpens) {
  auto d = open_device("cpu");
  EXPECT_EQ(d->kind(), BackendKind::kCpu);
  Buffer b = d->alloc(64);
  EXPECT_NE(b.view().host, nullptr);
}

}  // namespace
}  // namespace kvz::test
