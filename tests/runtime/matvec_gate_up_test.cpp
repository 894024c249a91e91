// matvec_gate_up (the decode gated MLP's gate/up matvecs and activation in one op) against the
// unfused ops it replaces on each backend, and against the CPU backend's f32 path within the
// int8 rounding of x (tests/runtime).
#include "runtime/ops/matvec_gate_up.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <tuple>

#include "runtime/ops/activation.h"
#include "runtime/ops/matmul.h"
#include "tests/common/random_weights.h"
#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

constexpr double kEps = 1.1920929e-7;  // fp32 epsilon

struct Outputs {
  std::vector<float> y;
  std::vector<uint32_t> y8;
  bool fused = false;
};

// One token through matvec_gate_up (fused: true) or through matmul, matmul, gated_act (false),
// x rounded by quantize_x8 first as the forward pass's rms_norm does.
Outputs run(Device& dev, bool op, DType t, int64_t n, int64_t k, const std::vector<float>& x,
            const std::vector<uint8_t>& wg, const std::vector<uint8_t>& wu, Activation act) {
  std::vector<Buffer> keep;
  MatvecGateUpArgs a;
  a.x = upload_f32(dev, keep, {1, k}, x);
  a.w_gate = upload(dev, keep, t, {n, k}, wg.data());
  a.w_up = upload(dev, keep, t, {n, k}, wu.data());
  a.y = alloc_tensor(dev, keep, DType::kF32, {1, n});
  a.up = alloc_tensor(dev, keep, DType::kF32, {1, n});
  a.act = act;
  a.x8 = alloc_tensor(dev, keep, DType::kI32, {matvec_x8_elems(k)});
  // y rounded for the down matvec where the forward pass would (d_ff % 256 == 0).
  if (n % 256 == 0) a.y8 = alloc_tensor(dev, keep, DType::kI32, {matvec_x8_elems(n)});
  Recorder rec(dev);
  quantize_x8(rec, a.x, a.x8);
  Outputs o;
  if (op) {
    o.fused = matvec_gate_up_fused(rec, a);
    matvec_gate_up(rec, a);
  } else {
    matmul(rec, {a.x, a.w_gate, a.y, {}, {}, a.x8});
    matmul(rec, {a.x, a.w_up, a.up, {}, {}, a.x8});
    gated_act(rec, {a.y, a.up, a.y, act, a.y8});
  }
  rec.finish();
  o.y = download_f32(dev, a.y);
  if (a.y8.defined()) o.y8 = download_as<uint32_t>(dev, a.y8);
  return o;
}

// One weight against x in double: per row j the product, k eps sum_c |w| (|x| + dx / 2) (an fp32
// sum in any order, of x or of x rounded to int8) and sum_c |w| dx / 2 (the int8 rounding of x;
// dx is the step of x's 32-value group).
struct RowRef {
  std::vector<double> dot, reorder, rounding;
};
RowRef row_ref(DType t, int64_t n, int64_t k, const std::vector<float>& x,
               const std::vector<uint8_t>& w) {
  std::vector<float> wf(static_cast<size_t>(k));
  std::vector<double> half_dx(static_cast<size_t>(k));
  for (int64_t g = 0; g < k / 32; ++g) {
    double amax = 0;
    for (int64_t c = 0; c < 32; ++c) amax = std::max(amax, double(std::fabs(x[g * 32 + c])));
    for (int64_t c = 0; c < 32; ++c) half_dx[size_t(g * 32 + c)] = amax / 127 / 2;
  }
  RowRef r{std::vector<double>(size_t(n)), std::vector<double>(size_t(n)),
           std::vector<double>(size_t(n))};
  for (int64_t j = 0; j < n; ++j) {
    cpu::dequantize_row(t, w.data() + row_bytes(t, k) * size_t(j), wf.data(), k);
    for (int64_t c = 0; c < k; ++c) {
      const double aw = std::fabs(wf[size_t(c)]);
      r.dot[size_t(j)] += double(wf[size_t(c)]) * x[size_t(c)];
      r.reorder[size_t(j)] +=
          double(k) * kEps * aw * (std::fabs(x[size_t(c)]) + half_dx[size_t(c)]);
      r.rounding[size_t(j)] += aw * half_dx[size_t(c)];
    }
  }
  return r;
}

// y = act(g) u with g, u known within ge, ue: |dy| <= |act'| (|u| + ue) ge + (|act(g)| + ...) ue,
// with |act'| <= 1.13 and |act(g)| <= |g| + 0.2 for SiLU and both GELUs; plus the activation's
// own error (exp / tanh / erf within 1e-6 relative).
double y_tolerance(double g, double u, double ge, double ue) {
  return 1.13 * (std::fabs(u) + ue) * ge + (std::fabs(g) + ge + 0.2) * ue +
         1e-6 * (std::fabs(g) + 0.2) * std::fabs(u) + 1e-6;
}

// (weight type, d_ff, d_model, activation)
using Param = std::tuple<DType, int, int, Activation>;
class MatvecGateUpTest : public VkTest, public ::testing::WithParamInterface<Param> {};

TEST_P(MatvecGateUpTest, MatchesUnfusedOps) {
  const auto [t, n, k, act] = GetParam();
  Rng rng(uint64_t(n) * 31 + uint64_t(k));
  const std::vector<float> x = rng.uniform_vec(size_t(k), -2, 2);
  const std::vector<uint8_t> wg = random_weights(t, n, k, rng), wu = random_weights(t, n, k, rng);
  // Unfused on the CPU backend: f32 x, no int8 rounding (matvec_uses_x8 is false there).
  const Outputs cpu_ref = run(*cpu, false, t, n, k, x, wg, wu, act);
  const RowRef g = row_ref(t, n, k, x, wg), u = row_ref(t, n, k, x, wu);
  // The CPU backend runs the unfused ops: the same bits.
  const Outputs cpu_op = run(*cpu, true, t, n, k, x, wg, wu, act);
  EXPECT_FALSE(cpu_op.fused);
  EXPECT_EQ(cpu_op.y, cpu_ref.y);
  EXPECT_EQ(cpu_op.y8, cpu_ref.y8);
  // Every build of the fused kernel: subgroup or shared-memory sums, OpSDot or integer math.
  for (const bool subgroup : {true, false})
    for (const bool int_dot : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "subgroup " << subgroup << " int_dot " << int_dot);
      const ScopedTuning scope(*gpu, [&](Tuning& tn) {
        tn.matmul.allow_subgroup = subgroup;
        tn.matmul.allow_int_dot = int_dot;
        tn.matmul.fused_gate_up = true;
      });
      const Outputs unfused = run(*gpu, false, t, n, k, x, wg, wu, act);
      const Outputs op = run(*gpu, true, t, n, k, x, wg, wu, act);
      EXPECT_EQ(op.fused, t == DType::kQ4_K && n % 256 == 0) << "fusion rule";
      // Gate and up from the same int8 x in another order of sums: reordering bounds only. Against
      // the CPU's f32 x: reordering plus the rounding of x (Q4_K only; other types ignore x8).
      const bool rounded = t == DType::kQ4_K;
      int bad = 0, bad_ref = 0;
      for (size_t j = 0; j < size_t(n); ++j) {
        // Both GPU paths: fp32 sums of the same int8 products in different orders.
        const double ge = 2 * g.reorder[j], ue = 2 * u.reorder[j];
        if (std::fabs(op.y[j] - unfused.y[j]) > y_tolerance(g.dot[j], u.dot[j], ge, ue)) ++bad;
        const double gq = ge + (rounded ? g.rounding[j] : 0),
                     uq = ue + (rounded ? u.rounding[j] : 0);
        if (std::fabs(op.y[j] - cpu_ref.y[j]) > y_tolerance(g.dot[j], u.dot[j], gq, uq)) ++bad_ref;
      }
      EXPECT_EQ(bad, 0) << "rows off the unfused ops";
      EXPECT_EQ(bad_ref, 0) << "rows off the CPU backend";
      // y8: y's 32-value groups rounded to int8; values of nearly equal y differ by at most one
      // step.
      ASSERT_EQ(op.y8.size(), unfused.y8.size());
      ASSERT_EQ(op.y8.empty(), n % 256 != 0);
      int far = 0;
      for (int64_t i = 0; i < static_cast<int64_t>(op.y8.size()) && i < n / 4; ++i)
        for (int b = 0; b < 4; ++b) {
          const int qa = int8_t(op.y8[size_t(i)] >> (8 * b)),
                    qb = int8_t(unfused.y8[size_t(i)] >> (8 * b));
          if (std::abs(qa - qb) > 1) ++far;
        }
      EXPECT_EQ(far, 0) << "int8 values of y more than one step apart";
      // Each group's step dx (amax / 127): amax of nearly equal values.
      for (int64_t grp = 0; grp < static_cast<int64_t>(op.y8.size()) && grp < n / 32; ++grp) {
        const size_t at = size_t(n / 4 + 2 * grp);
        const float da = std::bit_cast<float>(op.y8[at]), db = std::bit_cast<float>(unfused.y8[at]);
        EXPECT_NEAR(da, db, 1e-3 * std::fabs(db) + 1e-12) << "group " << grp;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MatvecGateUpTest,
    ::testing::Values(Param{DType::kQ4_K, 256, 256, Activation::kSilu},
                      Param{DType::kQ4_K, 1792, 1280, Activation::kSilu},
                      Param{DType::kQ4_K, 512, 768, Activation::kGeluTanh},
                      Param{DType::kQ4_K, 96, 512, Activation::kSilu},    // d_ff % 256: unfused
                      Param{DType::kQ6_K, 256, 512, Activation::kSilu}),  // unfused
    [](const auto& p) {
      return std::string(dtype_name(std::get<0>(p.param))) + "_" +
             std::to_string(std::get<1>(p.param)) + "x" + std::to_string(std::get<2>(p.param)) +
             "_act" + std::to_string(int(std::get<3>(p.param)));
    });

}  // namespace
}  // namespace kvz::test
