// GPU-vs-reference tests for add and rms_norm (tests/runtime).
#include <cmath>

#include "runtime/ops/elementwise.h"
#include "runtime/ops/rms_norm.h"
#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

class ElementwiseTest : public VkTest, public ::testing::WithParamInterface<int64_t> {};

TEST_P(ElementwiseTest, AddMatchesReference) {
  int64_t n = GetParam();
  Rng rng(1);
  auto a = rng.uniform_vec(n), b = rng.uniform_vec(n);
  std::vector<Buffer> keep;
  Recorder rec(*gpu);
  Tensor ta = upload_f32(*gpu, keep, {n}, a), tb = upload_f32(*gpu, keep, {n}, b);
  Tensor ty = alloc_tensor(*gpu, keep, DType::kF32, {n});
  add(rec, {ta, tb, ty});
  rec.finish();
  std::vector<float> ref(n);
  for (int64_t i = 0; i < n; ++i) ref[i] = a[i] + b[i];
  EXPECT_TRUE(all_close(download_f32(*gpu, ty), ref, 0.0));
}

TEST_P(ElementwiseTest, RmsNormMatchesReference) {
  const int64_t rows = 3, cols = GetParam();
  Rng rng(2);
  auto x = rng.uniform_vec(rows * cols, -2, 2), w = rng.uniform_vec(cols);
  std::vector<Buffer> keep, keep_cpu;
  RmsNormArgs args;
  args.eps = 1e-6f;
  args.weight_offset = 1.0f;
  args.x = upload_f32(*gpu, keep, {rows, cols}, x);
  args.w = upload_f32(*gpu, keep, {cols}, w);
  args.y = alloc_tensor(*gpu, keep, DType::kF32, {rows, cols});
  Recorder rec(*gpu);
  rms_norm(rec, args);
  rec.finish();
  RmsNormArgs ref_args = args;
  ref_args.x = upload_f32(*cpu, keep_cpu, {rows, cols}, x);
  ref_args.w = upload_f32(*cpu, keep_cpu, {cols}, w);
  ref_args.y = alloc_tensor(*cpu, keep_cpu, DType::kF32, {rows, cols});
  Recorder cpu_rec(*cpu);
  rms_norm(cpu_rec, ref_args);
  // fp32 sum of n squares: relative error ~ n * eps_f32 on the scale, then one multiply.
  double tol = 4 * cols * 1.2e-7;
  EXPECT_TRUE(all_close(download_f32(*gpu, args.y), download_f32(*cpu, ref_args.y), tol, tol));
}

// The fused residual add: x becomes x + res exactly (one fp32 add), y the norm of the sum, as the
// unfused reference (plain rms_norm of the sum on the CPU) computes it. Same on the CPU backend.
TEST_P(ElementwiseTest, RmsNormWithResidualMatchesAddThenNorm) {
  const int64_t rows = 2, cols = GetParam();
  Rng rng(3);
  auto x = rng.uniform_vec(rows * cols, -2, 2), r = rng.uniform_vec(rows * cols, -1, 1),
       w = rng.uniform_vec(cols);
  std::vector<float> sum(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + r[i];
  std::vector<Buffer> keep_cpu;
  RmsNormArgs ref;
  ref.x = upload_f32(*cpu, keep_cpu, {rows, cols}, sum);
  ref.w = upload_f32(*cpu, keep_cpu, {cols}, w);
  ref.y = alloc_tensor(*cpu, keep_cpu, DType::kF32, {rows, cols});
  cpu::rms_norm_ref(ref);
  const auto want = download_f32(*cpu, ref.y);
  const double tol = 4 * cols * 1.2e-7;
  for (Device* dev : {gpu, cpu}) {
    std::vector<Buffer> keep;
    RmsNormArgs a;
    a.x = upload_f32(*dev, keep, {rows, cols}, x);
    a.residual = upload_f32(*dev, keep, {rows, cols}, r);
    a.w = upload_f32(*dev, keep, {cols}, w);
    a.y = alloc_tensor(*dev, keep, DType::kF32, {rows, cols});
    Recorder rec(*dev);
    rms_norm(rec, a);
    rec.finish();
    EXPECT_TRUE(all_close(download_f32(*dev, a.x), sum, 0.0)) << dev->caps().name;
    EXPECT_TRUE(all_close(download_f32(*dev, a.y), want, tol, tol)) << dev->caps().name;
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, ElementwiseTest,
                         ::testing::Values(1, 7, 64, 255, 257, 1000, 4096, 4099, 8192));

}  // namespace
}  // namespace kvz::test
