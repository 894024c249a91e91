// GPU-vs-reference tests for gated activations and row softmax (tests/runtime).
#include "runtime/ops/activation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "runtime/ops/matmul.h"
#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

constexpr double kEps = 1.1920929e-7;  // fp32 epsilon

// The reference against known values: silu(1), HF gelu_pytorch_tanh(1), exact gelu(1), and -2.
TEST(ActivationRef, KnownValues) {
  Device& dev = cpu_device();
  const std::vector<float> gate = {1, 1, 1, -2, -2, -2}, up(6, 1.0f);
  const Activation acts[3] = {Activation::kSilu, Activation::kGeluTanh, Activation::kGelu};
  const double want[6] = {0.7310585786300049,   0.8411919906082768, 0.8413447460685429,
                          -0.23840584404423515, -0.04540230591222,  -0.04550026389635842};
  for (int i = 0; i < 6; ++i) {
    std::vector<Buffer> keep;
    GatedActArgs a;
    a.gate = upload_f32(dev, keep, {1}, {gate[i]});
    a.up = upload_f32(dev, keep, {1}, {up[i]});
    a.y = alloc_tensor(dev, keep, DType::kF32, {1});
    a.act = acts[i % 3];
    Recorder rec(dev);
    gated_act(rec, a);
    EXPECT_NEAR(download_f32(dev, a.y)[0], want[i], 1e-6) << i;
  }
}

// (n_rows, n_cols, activation)
using ActParam = std::tuple<int, int, Activation>;
class GatedActTest : public VkTest, public ::testing::WithParamInterface<ActParam> {};

TEST_P(GatedActTest, MatchesReference) {
  const auto [rows, cols, act] = GetParam();
  const int64_t r = rows, c = cols;
  Rng rng(rows * 7 + cols);
  auto gate = rng.uniform_vec(r * c, -8, 8), up = rng.uniform_vec(r * c, -2, 2);
  const float extremes[] = {-100.0f, 100.0f, -30.0f, 30.0f, 0.0f, -1e-30f};
  for (size_t i = 0; i < std::size(extremes) && i < gate.size(); ++i)
    gate[i * 11 % gate.size()] = extremes[i];
  Tensor out[2];
  std::vector<Buffer> keep[2];
  Device* devs[2] = {gpu, cpu};
  for (int i = 0; i < 2; ++i) {
    GatedActArgs a;
    a.gate = upload_f32(*devs[i], keep[i], {r, c}, gate);
    a.up = upload_f32(*devs[i], keep[i], {r, c}, up);
    a.y = out[i] = i == 0 ? a.gate : alloc_tensor(*devs[i], keep[i], DType::kF32, {r, c});
    a.act = act;  // the GPU run writes in place (y aliases gate)
    Recorder rec(*devs[i]);
    gated_act(rec, a);
    rec.finish();
  }
  // exp/tanh/erf within a few ulp (erf: A&S 7.1.26, 1.5e-7 absolute, times |x| / 2 <= 4), times
  // |up| <= 2: relative 32 eps, absolute floor for values near zero.
  EXPECT_TRUE(all_close(download_f32(*gpu, out[0]), download_f32(*cpu, out[1]), 2e-6, 32 * kEps));
}

INSTANTIATE_TEST_SUITE_P(Shapes, GatedActTest,
                         ::testing::Combine(::testing::Values(1, 3),
                                            ::testing::Values(7, 257, 4099),
                                            ::testing::Values(Activation::kSilu,
                                                              Activation::kGeluTanh,
                                                              Activation::kGelu)));

// (n_rows, n_cols, activation)
class GatedActX8Test : public VkTest, public ::testing::WithParamInterface<ActParam> {};

// y rounded to int8 by the activation itself (GatedActArgs::x8), in place as in the forward pass:
// y and x8 the same bits as the plain activation followed by quantize_x8, on each backend. The
// first 32 values of up are 0 (a group with amax 0).
TEST_P(GatedActX8Test, FusedEqualsActThenQuantize) {
  const auto [rows, cols, act] = GetParam();
  const int64_t r = rows, c = cols;
  Rng rng(r * 17 + c);
  auto gate = rng.uniform_vec(r * c, -8, 8), up = rng.uniform_vec(r * c, -2, 2);
  std::fill_n(up.begin(), 32, 0.0f);
  for (Device* dev : {gpu, cpu}) {
    std::vector<uint32_t> got[2][2];  // [separate, fused][y, x8]
    for (int fused = 0; fused < 2; ++fused) {
      std::vector<Buffer> keep;
      GatedActArgs a;
      a.gate = a.y = upload_f32(*dev, keep, {r, c}, gate);
      a.up = upload_f32(*dev, keep, {r, c}, up);
      a.act = act;
      const Tensor x8 = alloc_tensor(*dev, keep, DType::kI32, {matvec_x8_elems(r * c)});
      Recorder rec(*dev);
      if (fused) a.x8 = x8;
      gated_act(rec, a);
      if (!fused) quantize_x8(rec, a.y, x8);
      rec.finish();
      got[fused][0] = download_as<uint32_t>(*dev, a.y);
      got[fused][1] = download_as<uint32_t>(*dev, x8);
    }
    for (int i = 0; i < 2; ++i) EXPECT_EQ(got[0][i], got[1][i]) << dev->caps().name << " " << i;
  }
}

// Decode widths (1 x 4096, 1 x 14336 = Llama-3-8B d_ff), odd and even row counts.
INSTANTIATE_TEST_SUITE_P(Shapes, GatedActX8Test,
                         ::testing::Combine(::testing::Values(1, 3),
                                            ::testing::Values(256, 4096, 14336),
                                            ::testing::Values(Activation::kSilu,
                                                              Activation::kGeluTanh,
                                                              Activation::kGelu)));

// (n_rows, n_cols)
using SoftmaxParam = std::tuple<int, int>;
class SoftmaxTest : public VkTest, public ::testing::WithParamInterface<SoftmaxParam> {};

TEST_P(SoftmaxTest, MatchesReference) {
  const auto [rows, cols] = GetParam();
  const int64_t r = rows, c = cols;
  Rng rng(rows * 13 + cols);
  auto x = rng.uniform_vec(r * c, -20, 20);
  x[0] = 85.0f;  // exp would overflow without subtracting the max
  if (x.size() > 3) x[3] = -std::numeric_limits<float>::infinity();  // a masked entry
  for (float scale : {1.0f, 0.125f}) {
    Tensor out[2];
    std::vector<Buffer> keep[2];
    Device* devs[2] = {gpu, cpu};
    for (int i = 0; i < 2; ++i) {
      SoftmaxArgs a;
      a.x = upload_f32(*devs[i], keep[i], {r, c}, x);
      a.y = out[i] = i == 0 ? a.x : alloc_tensor(*devs[i], keep[i], DType::kF32, {r, c});
      a.scale = scale;
      Recorder rec(*devs[i]);
      softmax(rec, a);
      rec.finish();
    }
    const auto got = download_f32(*gpu, out[0]), ref = download_f32(*cpu, out[1]);
    // Per-thread serial sums of cols/256 terms then a 256-way tree, plus exp of an argument
    // up to |40 * scale| + 85 rounded once (relative error eps * |arg|) and a few ulp of exp.
    const double tol = (cols / 256.0 + 16 + 128 * scale + 4) * kEps;
    SCOPED_TRACE(::testing::Message() << "scale " << scale);
    EXPECT_TRUE(all_close(got, ref, 1e-30, tol));
    double sum0 = 0;
    for (int64_t j = 0; j < c; ++j) sum0 += got[j];
    EXPECT_NEAR(sum0, 1.0, tol);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SoftmaxTest,
                         ::testing::Values(SoftmaxParam{1, 1}, SoftmaxParam{3, 7},
                                           SoftmaxParam{2, 255}, SoftmaxParam{5, 257},
                                           SoftmaxParam{2, 4099}, SoftmaxParam{1, 262144}));

}  // namespace
}  // namespace kvz::test
