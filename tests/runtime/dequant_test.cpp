// Dequantisation goldens (bit-exact vs the Python gguf package), the fast CPU matmul vs the scalar
// reference, and GPU matmul / matvec / embedding vs the CPU reference for every weight type.
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "runtime/cpu/dequant.h"
#include "runtime/cpu/matmul_cpu.h"
#include "runtime/cpu/qdot.h"
#include "runtime/ops/binding_chunks.h"
#include "runtime/ops/matmul.h"
#include "runtime/ops/matmul_detail.h"
#include "tests/common/random_weights.h"
#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

constexpr DType kWeightTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ8_0,
                                  DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                  DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

std::vector<char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing golden " << path;
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string golden_path(DType t, const char* ext) {
  const char* root = std::getenv("KVZ_SOURCE_DIR");
  return std::string(root ? root : ".") + "/tests/data/dequant/" + std::string(dtype_name(t)) + ext;
}

class DequantGolden : public ::testing::TestWithParam<DType> {};

TEST_P(DequantGolden, BitExactVsGguf) {
  const DType t = GetParam();
  auto raw = read_file(golden_path(t, ".bin"));
  auto want_bytes = read_file(golden_path(t, ".f32"));
  const int64_t n = int64_t(want_bytes.size() / 4);
  ASSERT_GT(n, 0);
  ASSERT_EQ(raw.size(), row_bytes(t, n));
  std::vector<float> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
  std::memcpy(want.data(), want_bytes.data(), want_bytes.size());
  cpu::dequantize_row(t, raw.data(), got.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(std::memcmp(&got[i], &want[i], 4), 0)
        << dtype_name(t) << " value " << i << ": got " << got[i] << " want " << want[i];
}

INSTANTIATE_TEST_SUITE_P(Types, DequantGolden,
                         ::testing::ValuesIn(kWeightTypes + 1,
                                             std::end(kWeightTypes)),  // f32 is a copy
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

struct Shape {
  int64_t m, n, k;
  bool bias;
};

// Tolerance for an fp32-accumulated dot of length k vs a double reference: the recursive-summation
// bound k * eps * sum|x w|, with sum|x w| bounded by the largest row sum over the test data.
double dot_tolerance(const std::vector<float>& x, const std::vector<float>& wf, int64_t m,
                     int64_t n, int64_t k) {
  double worst = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t c = 0; c < k; ++c) s += std::fabs(double(x[i * k + c]) * wf[j * k + c]);
      worst = std::max(worst, s);
    }
  return double(k) * 1.2e-7 * worst + 1e-30;
}

// Runs matmul on `dev` (CPU: the fast path) and returns y; the reference uses the CPU device.
struct MatmulCase {
  DType t;
  Shape s;
  std::vector<float> x, bias;
  std::vector<uint8_t> w;
  MatmulCase(DType t_, Shape s_, uint64_t seed) : t(t_), s(s_) {
    Rng rng(seed);
    x = rng.uniform_vec(size_t(s.m * s.k));
    w = random_weights(t, s.n, s.k, rng);
    if (s.bias) bias = rng.uniform_vec(size_t(s.n));
  }
  std::vector<float> run(Device& dev, bool reference, bool allow_subgroup = true,
                         size_t* n_chunks = nullptr) const {
    MatmulTuning opt = dev.tuning().matmul;
    opt.allow_subgroup = allow_subgroup;
    opt.allow_coopmat = false;  // the f32-tolerance scalar kernels (matmul_coopmat_test: f16 one)
    return run_with(dev, reference, opt, {}, n_chunks);
  }
  // `x8`: the scratch of matvec variant 4 (x rounded once per call).
  std::vector<float> run_with(Device& dev, bool reference, const MatmulTuning& opt,
                              const Tensor& x8 = {}, size_t* n_chunks = nullptr) const {
    std::vector<Buffer> keep;
    MatmulArgs a;
    a.x = upload_f32(dev, keep, {s.m, s.k}, x);
    a.w = upload(dev, keep, t, {s.n, s.k}, w.data());
    a.y = alloc_tensor(dev, keep, DType::kF32, {s.m, s.n});
    if (s.bias) a.bias = upload_f32(dev, keep, {s.n}, bias);
    if (n_chunks) *n_chunks = binding_chunks(a.w, dev.caps()).size();
    if (reference) {
      cpu::matmul_ref(a);
    } else {
      Recorder rec(dev);
      if (given_x8) {  // the forward pass's way: x rounded once by the caller (MatmulArgs::x8)
        a.x8 = alloc_tensor(dev, keep, DType::kI32, {matvec_x8_elems(s.k)});
        quantize_x8(rec, a.x, a.x8);
      }
      detail::matmul_with(rec, a, opt, x8);
      rec.finish();
    }
    return download_f32(dev, a.y);
  }
  bool given_x8 = false;
  double tolerance() const {
    std::vector<float> wf(size_t(s.n * s.k));
    cpu::dequantize_rows(t, w.data(), s.k, 0, s.n, wf.data());
    return dot_tolerance(x, wf, s.m, s.n, s.k);
  }
  // Matvec variants 3, 4 round x to int8 per 32 values (dx = amax_g / 127, to nearest), so each
  // x value moves by at most amax_g / 254 and a row by at most sum_g amax_g / 254 * sum_{i in g}
  // |w_i| on top of the fp32 bound (1% slack for the fp32 rounding of dx and x / dx). `xb`: the
  // values per x scale (the CPU rounds K-quants' x per 256).
  double int8_tolerance(int64_t xb = 32) const {
    std::vector<float> wf(size_t(s.n * s.k));
    cpu::dequantize_rows(t, w.data(), s.k, 0, s.n, wf.data());
    double worst = 0;
    for (int64_t r = 0; r < s.m; ++r)  // every row of x
      for (int64_t j = 0; j < s.n; ++j) {
        double e = 0;
        for (int64_t g = 0; g < s.k; g += xb) {
          double amax = 0, sw = 0;
          for (int64_t i = g; i < g + xb; ++i) {
            amax = std::max(amax, std::fabs(double(x[size_t(r * s.k + i)])));
            sw += std::fabs(double(wf[size_t(j * s.k + i)]));
          }
          e += amax / 254 * sw;
        }
        worst = std::max(worst, e);
      }
    return tolerance() + 1.01 * worst;
  }
  // The same case with x rounded as matvec variants 3, 4 round it (round(x * 127 / amax) * amax /
  // 127 per 32 values): they must match its reference within the fp32 bound, plus one rounding
  // step dx_g |w_i| in case the GPU (which may fuse x * inv + 1.5 * 2^23 into one FMA) rounds one
  // x value lying within an ulp of a .5 boundary the other way.
  MatmulCase int8_rounded(double* flip_tol, int64_t xb = 32) const {
    MatmulCase q = *this;
    std::vector<float> wf(size_t(s.n * s.k));
    cpu::dequantize_rows(t, w.data(), s.k, 0, s.n, wf.data());
    *flip_tol = 0;
    for (int64_t g = 0; g < s.m * s.k; g += xb) {  // every row of x
      float amax = 0;
      for (int64_t i = g; i < g + xb; ++i) amax = std::max(amax, std::fabs(x[size_t(i)]));
      const float inv = amax > 0 ? 127.0f / amax : 0.0f, dx = amax / 127.0f;
      for (int64_t i = g; i < g + xb; ++i) q.x[size_t(i)] = std::nearbyint(x[size_t(i)] * inv) * dx;
      for (int64_t j = 0; j < s.n; ++j)
        for (int64_t i = g; i < g + xb; ++i)
          *flip_tol = std::max(*flip_tol, double(dx) * std::fabs(wf[size_t(j * s.k + i % s.k)]));
    }
    return q;
  }
};

std::vector<Shape> shapes_for(DType t) {
  const bool kq = dtype_info(t).block_elems == 256;
  const int64_t k_small = kq ? 256 : 32;
  return {{1, 130, 512, false},     {1, 1, k_small, false}, {1, 5, 256, true},   {3, 5, 256, false},
          {17, 64, k_small, false}, {70, 130, 512, false},  {17, 130, 256, true}};
}

class MatmulTest : public VkTest, public ::testing::WithParamInterface<DType> {};

TEST_P(MatmulTest, GpuMatchesReference) {
  for (const Shape& s : shapes_for(GetParam())) {
    MatmulCase c(GetParam(), s, uint64_t(s.m * 1000003 + s.n * 101 + s.k));
    auto ref = c.run(*cpu, true);
    EXPECT_TRUE(all_close(c.run(*gpu, false), ref, c.tolerance()))
        << "m " << s.m << " n " << s.n << " k " << s.k << " bias " << s.bias;
    if (s.m == 1) {  // the shared-memory matvec too, where the device would pick subgroupAdd
      EXPECT_TRUE(all_close(c.run(*gpu, false, false), ref, c.tolerance()))
          << "no-subgroup matvec, n " << s.n << " k " << s.k;
    }
  }
}

// Embedding of `ids` from a [n_vocab, d] table of type t on dev (scale 0.5); n_chunks: how many
// bindings the table takes there.
std::vector<float> run_embedding(Device& dev, DType t, const std::vector<uint8_t>& table,
                                 int64_t n_vocab, int64_t d, const std::vector<int32_t>& ids,
                                 size_t* n_chunks = nullptr) {
  const auto n = int64_t(ids.size());
  std::vector<Buffer> keep;
  EmbeddingArgs a;
  a.table = upload(dev, keep, t, {n_vocab, d}, table.data());
  a.ids = upload(dev, keep, DType::kI32, {n}, ids.data());
  a.y = alloc_tensor(dev, keep, DType::kF32, {n, d});
  a.scale = 0.5f;
  if (n_chunks) *n_chunks = binding_chunks(a.table, dev.caps()).size();
  Recorder rec(dev);
  embedding(rec, a);
  rec.finish();
  return download_f32(dev, a.y);
}

TEST_P(MatmulTest, EmbeddingMatchesReference) {
  const DType t = GetParam();
  const int64_t n_vocab = 37, d = is_quantized(t) ? 512 : 130;
  Rng rng(7);
  auto table = random_weights(t, n_vocab, d, rng);
  std::vector<int32_t> ids = {0, 36, 5, 5, 17, 1, 35, 2, 20};
  // Same dequantisation math on both sides; slack only for fp16 subnormals a GPU may flush.
  EXPECT_TRUE(all_close(run_embedding(*gpu, t, table, n_vocab, d, ids),
                        run_embedding(*cpu, t, table, n_vocab, d, ids), 6.2e-5, 1e-6));
}

// x rounded once by the caller (MatmulArgs::x8, as the forward pass does for Q4_K decode) gives
// the same bits as variant 4 rounding it inside the op; other types ignore x8.
TEST_P(MatmulTest, GivenX8MatchesVariant4) {
  const DType t = GetParam();
  if (!matvec_uses_x8(*gpu, t) && t != DType::kQ6_K) GTEST_SKIP() << "Q4_K and Q6_K";
  MatmulCase c(t, {1, 130, 1024, true}, 21);
  std::vector<Buffer> keep;
  MatmulTuning v4;
  v4.allow_coopmat = false;
  Tensor x8;
  if (t == DType::kQ4_K) {
    v4.matvec_variant = 4;
    x8 = alloc_tensor(*gpu, keep, DType::kI32, {matvec_x8_elems(1024)});
  }
  const std::vector<float> want = c.run_with(*gpu, false, v4, x8);
  c.given_x8 = true;
  MatmulTuning plain;
  plain.allow_coopmat = false;
  EXPECT_EQ(c.run_with(*gpu, false, plain), want) << dtype_name(t);
}

// cpu::quantize_x8_ref against shaders/quantize_x8.comp: the same layout; int8 values within 1
// (a driver may round x * inv + 1.5 * 2^23 as one fma, or divide to within an ulp), dx within 2
// ulp, group sums within the reordering of 32 fp32 adds. The first group is all zeros (amax 0).
class QuantizeX8Test : public VkTest {};

TEST_F(QuantizeX8Test, CpuMatchesGpu) {
  const int64_t k = 1024;
  Rng rng(9);
  auto x = rng.uniform_vec(k, -3, 3);
  std::fill_n(x.begin(), 32, 0.0f);
  std::vector<uint32_t> got[2];
  Device* devs[2] = {gpu, cpu};
  for (int i = 0; i < 2; ++i) {
    std::vector<Buffer> keep;
    const Tensor xt = upload_f32(*devs[i], keep, {1, k}, x);
    const Tensor x8 = alloc_tensor(*devs[i], keep, DType::kI32, {matvec_x8_elems(k)});
    Recorder rec(*devs[i]);
    quantize_x8(rec, xt, x8);
    rec.finish();
    got[i] = download_as<uint32_t>(*devs[i], x8);
  }
  for (int64_t i = 0; i < k; ++i) {
    auto value = [&](int d) { return int(int8_t(got[d][size_t(i / 4)] >> (8 * (i % 4)))); };
    EXPECT_LE(std::abs(value(0) - value(1)), 1) << "value " << i;
  }
  auto as_float = [&](int d, int64_t j) { return std::bit_cast<float>(got[d][size_t(k / 4 + j)]); };
  for (int64_t g = 0; g < k / 32; ++g) {
    EXPECT_NEAR(as_float(0, 2 * g), as_float(1, 2 * g), 2.4e-7 * as_float(1, 2 * g)) << g;
    EXPECT_NEAR(as_float(0, 2 * g + 1), as_float(1, 2 * g + 1), 32 * 3 * 32 * 1.2e-7) << g;
  }
}

// Every decode matvec shape the benchmarks sweep (workgroup size, rows per workgroup, Q4_K
// variant), with n not a multiple of the rows and a block count not a multiple of the step.
// Variants: 0 and 1 here, the matvec_wide ones (2-4) in MatvecWideShapesMatchReference; their
// 16 rows per workgroup are left to the bench's check (lavapipe compiles them for ~10 s).
void check_matvec_shapes(Device& gpu, Device& cpu, DType t,
                         std::initializer_list<uint32_t> rows_set,
                         std::initializer_list<uint32_t> variants) {
  MatmulCase c(t, {1, 131, 1280, false}, 5);
  const auto ref = c.run(cpu, true);
  const double tol_int8 = t == DType::kQ4_K ? c.int8_tolerance() : 0.0;
  std::vector<Buffer> keep;
  const Tensor x8 = alloc_tensor(gpu, keep, DType::kI32, {matvec_x8_elems(c.s.k)});
  const uint32_t sg = gpu.caps().subgroup_size;
  for (uint32_t wg : {32u, 64u, 128u, 256u})
    for (uint32_t rows : rows_set)
      for (uint32_t variant : variants) {
        if (wg % sg != 0 || wg / sg > 32) continue;
        MatmulTuning o;
        o.allow_coopmat = false;
        o.matvec_wg = wg, o.matvec_rows = rows, o.matvec_variant = variant;
        EXPECT_TRUE(
            all_close(c.run_with(gpu, false, o, x8), ref, variant >= 3 ? tol_int8 : c.tolerance()))
            << "wg " << wg << " rows " << rows << " variant " << variant;
      }
}

// The tensor-core matmul's dequantising pre-pass (shaders/dequant_f16.comp) against the CPU
// dequantisation rounded to f16: equal, or both below the smallest normal f16 (a GPU may flush
// subnormals).
TEST_P(MatmulTest, DequantF16MatchesCpu) {
  const DType t = GetParam();
  if (!is_quantized(t)) GTEST_SKIP() << "the pre-pass is for block types";
  const int64_t n = 37, k = 512;
  Rng rng(11);
  const std::vector<uint8_t> w = random_weights(t, n, k, rng);
  std::vector<Buffer> keep;
  const Tensor wt = upload(*gpu, keep, t, {n, k}, w.data());
  const Tensor y = alloc_tensor(*gpu, keep, DType::kF16, {n, k});
  Recorder rec(*gpu);
  detail::dequantize_f16(rec, wt, y);
  rec.finish();
  const std::vector<uint16_t> got = download_as<uint16_t>(*gpu, y);
  std::vector<float> ref(size_t(n * k));
  cpu::dequantize_rows(t, w.data(), k, 0, n, ref.data());
  size_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const float g = cpu::f16_to_f32(got[i]), r = cpu::f16_to_f32(cpu::f32_to_f16(ref[i]));
    if (g != r && !(std::fabs(g) < 6.11e-5f && std::fabs(r) < 6.11e-5f)) {
      if (bad++ < 5) ADD_FAILURE() << "value " << i << ": got " << g << ", want " << r;
    }
  }
  EXPECT_EQ(bad, 0u) << dtype_name(t);
}

TEST_P(MatmulTest, MatvecShapesMatchReference) {
  const DType t = GetParam();
  if (t != DType::kQ4_K && t != DType::kF16 && t != DType::kQ8_0) GTEST_SKIP() << "covered above";
  if (t == DType::kQ4_K)
    check_matvec_shapes(*gpu, *cpu, t, {1u, 3u, 8u}, {0u, 1u});
  else
    check_matvec_shapes(*gpu, *cpu, t, {1u, 3u, 8u}, {0u});
}

TEST_P(MatmulTest, MatvecWideShapesMatchReference) {
  if (GetParam() != DType::kQ4_K) GTEST_SKIP() << "Q4_K only";
  check_matvec_shapes(*gpu, *cpu, DType::kQ4_K, {1u, 3u, 8u}, {2u, 3u, 4u});
}

// The Q4_K matvec_wide variants (2 float, 3 and 4 int8 dot, 4 on x rounded by its own pass; with
// OpSDot where the device has it and with plain integer math) on every decode shape above plus a
// long row (224 units for 64 threads), with and without subgroupAdd. x has an all-zero 32-value
// group (dx = 0) and an outlier 100x the others (a coarse dx for its group). Variants 3 and 4 are
// also held to the tighter comparison with a reference on the int8-rounded x.
TEST_P(MatmulTest, MatvecWideMatchesReference) {
  if (GetParam() != DType::kQ4_K) GTEST_SKIP() << "Q4_K only";
  std::vector<Shape> shapes;
  for (const Shape& s : shapes_for(DType::kQ4_K))
    if (s.m == 1) shapes.push_back(s);
  shapes.push_back({1, 131, 1280, true});
  shapes.push_back({1, 9, 14336, false});
  for (const Shape& s : shapes) {
    MatmulCase c(DType::kQ4_K, s, uint64_t(s.n * 31 + s.k));
    if (s.k >= 512) {
      std::fill(c.x.begin() + 64, c.x.begin() + 96, 0.0f);
      c.x[200] = 100.0f;
    }
    const auto ref = c.run(*cpu, true);
    const double tol_f32 = c.tolerance(), tol_int8 = c.int8_tolerance();
    double flip_tol = 0;
    const MatmulCase c8 = c.int8_rounded(&flip_tol);
    const auto ref8 = c8.run(*cpu, true);
    const double tol_ref8 = c8.tolerance() + flip_tol;
    std::vector<Buffer> keep;
    const Tensor x8 = alloc_tensor(*gpu, keep, DType::kI32, {matvec_x8_elems(s.k)});
    for (uint32_t variant : {2u, 3u, 4u})
      for (bool sub : {true, false})
        for (bool int_dot : {true, false}) {
          if (variant == 2 && !int_dot) continue;
          MatmulTuning o;
          o.allow_coopmat = false;
          o.allow_subgroup = sub, o.allow_int_dot = int_dot, o.matvec_variant = variant;
          const auto got = c.run_with(*gpu, false, o, x8);
          EXPECT_TRUE(all_close(got, ref, variant >= 3 ? tol_int8 : tol_f32))
              << "variant " << variant << " n " << s.n << " k " << s.k << " bias " << s.bias
              << " subgroup " << sub << " int dot " << (int_dot && gpu->caps().int8_dot);
          if (variant >= 3) {
            EXPECT_TRUE(all_close(got, ref8, tol_ref8))
                << "vs int8-rounded x: variant " << variant << " n " << s.n << " k " << s.k
                << " subgroup " << sub << " int dot " << (int_dot && gpu->caps().int8_dot);
          }
        }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MatmulTest, ::testing::ValuesIn(kWeightTypes),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

// Weights above maxStorageBufferRange: bound as row chunks, one dispatch per chunk. A device whose
// range is lowered to 64 KiB (KVZ_MAX_STORAGE_BUFFER_RANGE) splits weights of a few hundred rows,
// while x, y and bias stay within one binding. Row counts: about 3.5 ranges (a partial last
// chunk) and two whole chunks plus one row.
constexpr uint64_t kSplitRange = 64 << 10;

class MatmulSplitTest : public VkTest, public ::testing::WithParamInterface<DType> {
 protected:
  void SetUp() override {
    VkTest::SetUp();
    if (!IsSkipped()) split = vk_device_with_range(kSplitRange);
  }
  // Rows of one chunk on the limited device for [*, k] weights of type t.
  int64_t chunk_rows(DType t, int64_t k) const {
    const int64_t big = int64_t(4 * kSplitRange / row_bytes(t, k));
    Tensor probe(BufferView{1, 0, SIZE_MAX, nullptr}, t, {big, k});
    return binding_chunks(probe, split->caps()).front().t.dim(0);
  }
  Device* split = nullptr;
};

TEST_P(MatmulSplitTest, ChunkedWeightsMatchReference) {
  const DType t = GetParam();
  const int64_t k = 512, rows = chunk_rows(t, k);
  const int64_t n_big = int64_t(7 * kSplitRange / 2 / row_bytes(t, k)) + 7;
  for (int64_t n : {n_big, 2 * rows + 1})
    for (Shape s : {Shape{1, n, k, false}, Shape{1, n, k, true}, Shape{2, n, k, false},
                    Shape{17, n, k, true}}) {
      MatmulCase c(t, s, uint64_t(s.m * 7919 + s.n));
      auto ref = c.run(*cpu, true);
      size_t n_chunks = 0;
      auto got = c.run(*split, false, true, &n_chunks);
      EXPECT_GE(n_chunks, 2u) << "n " << n << ": the weight should not fit one binding";
      EXPECT_TRUE(all_close(got, ref, c.tolerance()))
          << n_chunks << " chunks, m " << s.m << " n " << s.n << " k " << s.k << " bias " << s.bias;
      if (s.m == 1) {
        EXPECT_TRUE(all_close(c.run(*split, false, false), ref, c.tolerance()))
            << "no-subgroup matvec, " << n_chunks << " chunks, n " << s.n;
      }
      if (s.m == 1 && t == DType::kQ4_K) {  // matvec_wide per chunk; variant 4 rounds x once
        std::vector<Buffer> keep;
        MatmulTuning o;
        o.allow_coopmat = false;
        const Tensor x8 = alloc_tensor(*split, keep, DType::kI32, {matvec_x8_elems(k)});
        for (uint32_t variant : {2u, 3u, 4u}) {
          o.matvec_variant = variant;
          EXPECT_TRUE(all_close(c.run_with(*split, false, o, x8), ref,
                                variant >= 3 ? c.int8_tolerance() : c.tolerance()))
              << "variant " << variant << ", " << n_chunks << " chunks, n " << s.n;
        }
      }
    }
}

TEST_P(MatmulSplitTest, ChunkedTableEmbeddingMatchesReference) {
  const DType t = GetParam();
  const int64_t d = 512, rows = chunk_rows(t, d);
  const int64_t n_vocab = int64_t(7 * kSplitRange / 2 / row_bytes(t, d)) + 3;
  Rng rng(29);
  auto table = random_weights(t, n_vocab, d, rng);
  // First and last rows, both sides of every chunk boundary, repeats, unsorted.
  std::vector<int32_t> ids = {0, int32_t(n_vocab - 1), int32_t(rows - 1), int32_t(rows), 5, 5};
  for (int64_t r = 2 * rows; r < n_vocab; r += rows) {
    ids.push_back(int32_t(r));
    ids.push_back(int32_t(r - 1));
  }
  size_t n_chunks = 0;
  const auto got = run_embedding(*split, t, table, n_vocab, d, ids, &n_chunks);
  EXPECT_GE(n_chunks, 3u);
  EXPECT_TRUE(all_close(got, run_embedding(*cpu, t, table, n_vocab, d, ids), 6.2e-5, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Types, MatmulSplitTest, ::testing::ValuesIn(kWeightTypes),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

// binding_chunks() itself: exact cover in order, aligned offsets, within the range.
TEST(BindingChunksTest, CoverAlignedWithinRange) {
  DeviceCaps caps;
  caps.name = "fake";
  caps.storage_offset_alignment = 64;
  for (DType t : {DType::kF32, DType::kF16, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K})
    for (int64_t k : {256, 512, 2816})
      for (int64_t n : {1, 15, 16, 17, 1000, 4099})
        for (uint64_t range : {uint64_t(1) << 16, uint64_t(100000), uint64_t(1) << 20}) {
          caps.max_storage_buffer_range = range;
          Tensor w(BufferView{1, 256, SIZE_MAX, nullptr}, t, {n, k});
          const uint64_t rb = row_bytes(t, k);
          if (rb * 16 * 64 > range) continue;  // may not fit one aligned step of rows
          auto chunks = binding_chunks(w, caps);
          int64_t next = 0;
          for (const RowChunk& c : chunks) {
            EXPECT_EQ(c.row0, next);
            EXPECT_LE(c.t.nbytes(), range);
            EXPECT_EQ(c.t.mem().offset_bytes, 256 + rb * uint64_t(c.row0));
            EXPECT_EQ(c.t.mem().offset_bytes % 64, 0u) << dtype_name(t) << " k " << k;
            EXPECT_EQ(c.row0 % 16, 0);
            next += c.t.dim(0);
          }
          EXPECT_EQ(next, n);
          EXPECT_EQ(chunks.size() == 1, w.nbytes() <= range);
        }
  caps.max_storage_buffer_range = 1000;  // not even 16 rows of 2 KiB
  Tensor wide(BufferView{1, 0, SIZE_MAX, nullptr}, DType::kF32, {64, 512});
  EXPECT_THROW(binding_chunks(wide, caps), DeviceError);
}

// The CPU backend's fast path against the scalar reference on every SIMD level this machine runs
// (runtime/cpu/qdot.h): decode (m < 8) and prefill tiles, n not a multiple of the weight-row
// block, m not a multiple of the 4-row register tile, k not a multiple of a 256-value step.
// Block types round x to int8 per 32 values (K-quants from 8 rows: per 256), so they must match the
// reference of that rounded x within the fp32 bound (the rounding is specified: the test redoes it)
// and the exact-x reference within the rounding bound (int8_tolerance); float types match within
// the fp32 bound.
TEST(MatmulCpuTest, FastMatchesReferenceOnEverySimdLevel) {
  Device& dev = cpu_device();
  const std::vector<int64_t> targets = cpu::simd_targets();
  ASSERT_FALSE(targets.empty());
  for (DType t : kWeightTypes)
    for (Shape s : {Shape{1, 130, 512, false}, Shape{70, 130, 512, true}, Shape{3, 200, 256, false},
                    Shape{7, 77, 768, true}, Shape{8, 65, 256, false}, Shape{1, 1000, 768, true},
                    Shape{5, 33, 96, true}}) {
      if (s.k % dtype_info(t).block_elems != 0) continue;
      MatmulCase c(t, s, 11);
      const std::vector<float> exact = c.run(dev, true);
      double flip = 0;
      const int64_t xb = cpu::qdot_x_block(t, s.m);
      const MatmulCase rounded = c.int8_rounded(&flip, xb);
      const std::vector<float> want = is_quantized(t) ? rounded.run(dev, true) : exact;
      const double tol = is_quantized(t) ? rounded.tolerance() : c.tolerance();
      const double tol_exact = is_quantized(t) ? c.int8_tolerance(xb) : tol;
      set_cpu_int8_activations(false);  // exact x: dequantised rows, f32 SIMD
      EXPECT_TRUE(all_close(c.run(dev, false), exact, c.tolerance())) << dtype_name(t) << " exact";
      set_cpu_int8_activations(true);
      for (int64_t target : targets) {
        cpu::simd_force_target(target);
        const std::vector<float> got = c.run(dev, false);
        const std::string where = fmt::format("{} on {}: m {} n {} k {}", dtype_name(t),
                                              cpu::simd_name(target), s.m, s.n, s.k);
        EXPECT_TRUE(all_close(got, want, tol)) << where;
        EXPECT_TRUE(all_close(got, exact, tol_exact)) << where;
      }
      cpu::simd_force_target(0);
      set_cpu_int8_activations(false);
    }
}

}  // namespace
}  // namespace kvz::test
