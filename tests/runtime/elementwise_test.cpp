// GPU-vs-reference tests for add and rms_norm, and rms_norm with its x8 output (tests/runtime).
#include <algorithm>
#include <cmath>
#include <tuple>

#include "runtime/ops/elementwise.h"
#include "runtime/ops/matmul.h"
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

// (n_rows, n_cols)
using RmsNormX8Param = std::tuple<int, int>;
class RmsNormX8Test : public VkTest, public ::testing::WithParamInterface<RmsNormX8Param> {};

// y rounded to int8 by the norm itself (RmsNormArgs::x8): x, y and x8 the same bits as the plain
// norm followed by quantize_x8, on each backend. The first 32 values of x and the residual are 0
// (a group with amax 0).
TEST_P(RmsNormX8Test, FusedEqualsNormThenQuantize) {
  const auto [rows, cols] = GetParam();
  const int64_t r = rows, c = cols;
  Rng rng(r * 31 + c);
  auto x = rng.uniform_vec(r * c, -2, 2), res = rng.uniform_vec(r * c), w = rng.uniform_vec(c);
  std::fill_n(x.begin(), 32, 0.0f);
  std::fill_n(res.begin(), 32, 0.0f);
  for (Device* dev : {gpu, cpu}) {
    std::vector<uint32_t> got[2][3];  // [separate, fused][x, y, x8]
    for (int fused = 0; fused < 2; ++fused) {
      std::vector<Buffer> keep;
      RmsNormArgs a;
      a.x = upload_f32(*dev, keep, {r, c}, x);
      a.residual = upload_f32(*dev, keep, {r, c}, res);
      a.w = upload_f32(*dev, keep, {c}, w);
      a.y = alloc_tensor(*dev, keep, DType::kF32, {r, c});
      a.weight_offset = 1.0f;
      const Tensor x8 = alloc_tensor(*dev, keep, DType::kI32, {matvec_x8_elems(r * c)});
      Recorder rec(*dev);
      if (fused) a.x8 = x8;
      rms_norm(rec, a);
      if (!fused) quantize_x8(rec, a.y, x8);
      rec.finish();
      got[fused][0] = download_as<uint32_t>(*dev, a.x);
      got[fused][1] = download_as<uint32_t>(*dev, a.y);
      got[fused][2] = download_as<uint32_t>(*dev, x8);
    }
    for (int i = 0; i < 3; ++i) EXPECT_EQ(got[0][i], got[1][i]) << dev->caps().name << " " << i;
  }
}

// Decode (1 x 4096), odd and even row counts, rows of 96 (3 groups), and a row too long for
// shared memory on small devices (the op then runs quantize_x8 after the norm).
INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormX8Test,
                         ::testing::Values(RmsNormX8Param{1, 4096}, RmsNormX8Param{3, 256},
                                           RmsNormX8Param{2, 4096}, RmsNormX8Param{8, 96},
                                           RmsNormX8Param{5, 1024}, RmsNormX8Param{1, 16384}));

}  // namespace
}  // namespace kvz::test
