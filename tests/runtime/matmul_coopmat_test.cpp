// The tensor-core matmul (shaders/matmul_coopmat.comp, built for VK_NV_cooperative_matrix and
// VK_KHR_cooperative_matrix, and shaders/matmul_cm2.comp for VK_NV_cooperative_matrix2's f16
// weights) against a double reference on awkward shapes, through each extension the device (and
// build) has. Skips on devices without cooperative matrices (lavapipe).
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>

#include "runtime/cpu/dequant.h"
#include "runtime/ops/coopmat_peak.h"
#include "runtime/ops/matmul.h"
#include "runtime/ops/matmul_detail.h"
#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

// Random [n, k] weights: plain types uniform(-1, 1); block types random bytes with finite fp16
// scales of checkpoint-like size at the types' scale fields.
std::vector<uint8_t> coopmat_weights(DType t, int64_t n, int64_t k, Rng& rng) {
  std::vector<uint8_t> raw(row_bytes(t, k) * size_t(n));
  if (t == DType::kF16 || t == DType::kBF16) {
    for (size_t i = 0; i < raw.size() / 2; ++i) {
      const float v = rng.uniform();
      uint32_t u;
      std::memcpy(&u, &v, 4);
      const uint16_t h = t == DType::kF16 ? cpu::f32_to_f16(v) : uint16_t(u >> 16);
      std::memcpy(&raw[2 * i], &h, 2);
    }
    return raw;
  }
  for (auto& b : raw) b = uint8_t(rng.next());
  std::vector<int> offs = {0};
  if (t == DType::kQ4_1 || t == DType::kQ4_K) offs = {0, 2};
  if (t == DType::kQ6_K) offs = {208};
  const int bb = dtype_info(t).block_bytes;
  for (size_t blk = 0; blk < raw.size() / bb; ++blk)
    for (int off : offs) {
      const uint16_t h = cpu::f32_to_f16(rng.uniform(0.002f, 0.05f) * (rng.next() & 1 ? 1 : -1));
      std::memcpy(&raw[blk * bb + off], &h, 2);
    }
  return raw;
}

struct Shape {
  int64_t m, n, k;
  bool bias;
};

// x and w are rounded to f16 (relative error <= u = 2^-11 each) and products summed in f32, so
// |y - ref| <= (2u + u^2 + k * eps_f32) * sum_c |x_c w_c| per element. Vulkan may flush f16
// subnormals, so each operand may also lose up to the smallest normal f16 in absolute terms.
constexpr double kF16Unit = 1.0 / 2048.0, kF32Eps = 1.2e-7, kF16MinNormal = 6.11e-5;

void check_shape(Device& gpu, DType t, const Shape& s, const MatmulTuning& given,
                 bool scratch = false) {
  MatmulTuning opt = given;
  opt.cm2_matmul = true;  // the cm2 api's own kernel for f16 weights (not its default)
  Rng rng(uint64_t(s.m * 1000003 + s.n * 101 + s.k) ^ uint64_t(t));
  std::vector<float> x = rng.uniform_vec(size_t(s.m * s.k)), bias;
  if (s.bias) bias = rng.uniform_vec(size_t(s.n));
  std::vector<uint8_t> w = coopmat_weights(t, s.n, s.k, rng);
  std::vector<Buffer> keep;
  MatmulArgs a;
  a.x = upload_f32(gpu, keep, {s.m, s.k}, x);
  a.w = upload(gpu, keep, t, {s.n, s.k}, w.data());
  a.y = alloc_tensor(gpu, keep, DType::kF32, {s.m, s.n});
  if (s.bias) a.bias = upload_f32(gpu, keep, {s.n}, bias);
  if (scratch) a.w_scratch = alloc_tensor(gpu, keep, DType::kF16, {s.n * s.k + 64});
  Recorder rec(gpu);
  detail::matmul_with(rec, a, opt);
  rec.finish();
  const std::vector<float> got = download_f32(gpu, a.y);

  std::vector<float> wf(size_t(s.n * s.k));
  cpu::dequantize_rows(t, w.data(), s.k, 0, s.n, wf.data());
  const double rel = 2 * kF16Unit + kF16Unit * kF16Unit + double(s.k) * kF32Eps;
  size_t n_bad = 0, worst = 0;
  double worst_excess = 0, max_abs = 0;
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j) {
      double ref = s.bias ? bias[j] : 0.0, mag = s.bias ? std::fabs(bias[j]) : 0.0, flush = 0;
      const float* xr = &x[size_t(i * s.k)];
      const float* wr = &wf[size_t(j * s.k)];
      for (int64_t c = 0; c < s.k; ++c) {
        ref += double(xr[c]) * wr[c];
        mag += std::fabs(double(xr[c]) * wr[c]);
        flush += std::fabs(xr[c]) + std::fabs(wr[c]);
      }
      const size_t idx = size_t(i * s.n + j);
      const double err = std::fabs(double(got[idx]) - ref),
                   tol = rel * mag + kF16MinNormal * flush + 1e-6;
      max_abs = std::max(max_abs, err);
      if (!(err <= tol)) {
        if (n_bad == 0 || err - tol > worst_excess) worst = idx, worst_excess = err - tol;
        ++n_bad;
      }
    }
  EXPECT_EQ(n_bad, 0u) << dtype_name(t) << " tile " << opt.coopmat_tile[0] << ","
                       << opt.coopmat_tile[1] << "," << opt.coopmat_tile[2] << ","
                       << opt.coopmat_tile[3] << "," << opt.coopmat_tile[4] << ","
                       << opt.coopmat_tile[5] << " m " << s.m << " n " << s.n << " k " << s.k
                       << " bias " << s.bias << ": worst index " << worst << " (row "
                       << worst / size_t(s.n) << ", col " << worst % size_t(s.n)
                       << ") exceeds its bound by " << worst_excess << "; max abs error "
                       << max_abs;
}

class MatmulCoopmatTest : public VkTest,
                          public ::testing::WithParamInterface<std::tuple<DType, CoopmatApi>> {
 protected:
  void SetUp() override {
    VkTest::SetUp();
    if (IsSkipped()) return;
    const DeviceCaps& c = gpu->caps();
    const auto [t, api] = GetParam();
    if (!detail::coopmat_matmul_supported(c, t, api)) {
      std::string shapes;  // what the device offers, to tell a missing shape from a missing feature
      for (const CoopMatShape& s : c.coopmat_shapes)
        shapes += " " + s.ext + ":" + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                  std::to_string(s.k) + "/" + s.a_type + "->" + s.c_type;
      GTEST_SKIP() << c.name << ": no usable " << coopmat_api_name(api)
                   << " cooperative matrix 16x16x16 f16->f32 (nv " << c.coopmat_nv << ", khr "
                   << c.coopmat_khr << ", fp16 " << c.fp16 << ", memory model " << c.memory_model
                   << ", subgroup " << c.subgroup_size << " (control " << c.subgroup_size_control
                   << "), khr modules built " << !spirv(ShaderId::kMatmulCoopmatF16Khr).empty()
                   << ", shapes:" << shapes << ")";
    }
  }
};

// Tokens 33 / 100 / 512 (tile remainders at BM 64 and 128), n 96 and 4096 + 64 (half a BN tile
// left over), k 256 and 4096, with and without bias; m 129 and n 130 leave 1- and 2-wide edges;
// m 1100 takes the 128 x 128 tiles with a partial last row of tiles.
TEST_P(MatmulCoopmatTest, MatchesReference) {
  const auto [t, api] = GetParam();
  const ScopedTuning scope(*gpu, [&](Tuning& tn) { tn.coopmat = api; });
  for (const Shape& s :
       {Shape{33, 96, 256, true}, Shape{100, 4160, 256, false}, Shape{512, 96, 4096, true},
        Shape{129, 130, 512, false}, Shape{1100, 136, 512, true}})
    check_shape(*gpu, t, s, gpu->tuning().matmul);
  if (t == DType::kF16 || t == DType::kQ4_K)
    check_shape(*gpu, t, {33, 4160, 4096, true}, gpu->tuning().matmul);
}

// Block weights on many tokens with a scratch: dequantised to f16 first (dequant_f16.comp), then
// the f16 kernel; with and without bias, partial tiles.
TEST_P(MatmulCoopmatTest, DequantPass) {
  const auto [t, api] = GetParam();
  const ScopedTuning scope(*gpu, [&](Tuning& tn) { tn.coopmat = api; });
  if (!is_quantized(t)) GTEST_SKIP() << "the pre-pass is for block types";
  for (const Shape& s : {Shape{300, 4160, 256, true}, Shape{513, 130, 512, false}})
    check_shape(*gpu, t, s, gpu->tuning().matmul, true);
}

// A tile the device cannot run (here: two stages of k 64 at 128 x 128 need 72 KiB of shared
// memory) is refused with an error, not an abort or a failed pipeline.
TEST_P(MatmulCoopmatTest, UnfitTileIsAnError) {
  const auto [t, api] = GetParam();
  const ScopedTuning scope(*gpu, [&](Tuning& tn) { tn.coopmat = api; });
  if (t != DType::kF16) GTEST_SKIP() << "checked on f16";
  if (gpu->caps().shared_memory_bytes >= 72 * 1024) GTEST_SKIP() << "the tile fits this device";
  MatmulTuning opt = gpu->tuning().matmul;
  opt.coopmat_tile = {2, 4, 4, 2, 2, 64};
  EXPECT_THROW(check_shape(*gpu, t, {129, 130, 512, true}, opt), DeviceError);
}

// Every tile shape the tuning override (KVZ_MATMUL_TILE) may pick: 4 to 16 subgroups, one or two
// shared stages, k tiles of 32 and 64, fragments per subgroup from 2 x 2 to 4 x 4, on shapes with
// partial tiles.
TEST_P(MatmulCoopmatTest, OtherTiles) {
  const auto [t, api] = GetParam();
  const ScopedTuning scope(*gpu, [&](Tuning& tn) { tn.coopmat = api; });
  if (t != DType::kF16 && t != DType::kQ4_K) GTEST_SKIP() << "tiles are checked on f16 and q4_k";
  for (const std::array<uint32_t, 6> tile : {std::array<uint32_t, 6>{2, 4, 4, 2, 2, 32},
                                             {4, 2, 2, 4, 2, 32},
                                             {4, 2, 4, 4, 1, 32},
                                             {2, 4, 4, 4, 1, 32},
                                             {4, 4, 4, 2, 1, 32},
                                             {2, 2, 2, 2, 2, 32},
                                             {2, 2, 4, 4, 1, 64},
                                             {2, 4, 4, 2, 1, 64}}) {
    MatmulTuning opt = gpu->tuning().matmul;
    opt.coopmat_tile = tile;
    for (const Shape& s : {Shape{129, 130, 512, true}, Shape{300, 4160, 256, false}})
      check_shape(*gpu, t, s, opt);
  }
}

// Weights above maxStorageBufferRange (lowered to 64 KiB) are bound as row chunks: each dispatch
// writes its own columns [col0, col0 + n) of y's rows, with and without bias (x and y stay within
// the range: few tokens, so the tensor-core kernel is forced).
TEST_P(MatmulCoopmatTest, ChunkedWeights) {
  const auto [t, api] = GetParam();
  const ScopedTuning scope(*gpu, [&](Tuning& tn) { tn.coopmat = api; });
  if (t != DType::kF16 && t != DType::kQ4_K) GTEST_SKIP() << "checked on f16 and q4_k";
  Device* split = vk_device_with_range(64 << 10);
  ASSERT_NE(split, nullptr);
  const ScopedTuning split_scope(*split, [&](Tuning& tn) { tn.coopmat = api; });
  MatmulTuning forced = split->tuning().matmul;
  forced.force_coopmat = true;
  const int64_t k = t == DType::kF16 ? 480 : 256;
  for (const Shape& s : {Shape{32, 500, k, true}, Shape{20, 700, k, false}})
    check_shape(*split, t, s, forced);
}

// Below the token threshold the op picks the scalar kernel; forced, the tensor-core one must
// still handle tiles that are nearly all padding.
TEST_P(MatmulCoopmatTest, ForcedOnFewTokens) {
  const auto [t, api] = GetParam();
  const ScopedTuning scope(*gpu, [&](Tuning& tn) { tn.coopmat = api; });
  MatmulTuning forced = gpu->tuning().matmul;
  forced.force_coopmat = true;
  for (const Shape& s : {Shape{2, 17, 256, true}, Shape{31, 64, 512, false}})
    check_shape(*gpu, t, s, forced);
  if (!is_quantized(t)) check_shape(*gpu, t, {50, 70, 40, true}, forced);  // k not a tile multiple
}

INSTANTIATE_TEST_SUITE_P(
    Types, MatmulCoopmatTest,
    ::testing::Combine(::testing::Values(DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_1,
                                         DType::kQ4_K, DType::kQ6_K),
                       ::testing::Values(CoopmatApi::kNv, CoopmatApi::kKhr, CoopmatApi::kCm2)),
    [](const auto& p) {
      return std::string(dtype_name(std::get<0>(p.param))) + "_" +
             std::string(coopmat_api_name(std::get<1>(p.param)));
    });

// The default tile: 128 x 128 for plain weights from 256 tokens, 64 x 128 below, and 64 x 128 also
// where 128 x 128 tiles would not fill one round of resident workgroups (NVIDIA's rule: 2 per
// unit, here 132 units) on a device whose units are known; block types keep 256 x 128. Host-only:
// runs everywhere.
TEST(MatmulCoopmatTile, SmallTileWhereLargeOnesLeaveUnitsIdle) {
  using Tile = std::pair<uint32_t, uint32_t>;
  DeviceCaps nv;
  nv.vendor_id = 0x10DE, nv.compute_units = 132;
  const Tuning tn = default_tuning(nv);
  const uint32_t slots = tn.occupancy_units * tn.matmul.coopmat_plain_per_unit;
  ASSERT_EQ(slots, 264u);
  EXPECT_EQ(detail::coopmat_default_tile(DType::kF16, 100, 4096, slots), Tile(64, 128));
  // m 512: the down projection's 4 x 32 = 128 tiles, the up projection's 4 x 112 = 448.
  EXPECT_EQ(detail::coopmat_default_tile(DType::kF16, 512, 4096, slots), Tile(64, 128));
  EXPECT_EQ(detail::coopmat_default_tile(DType::kBF16, 512, 3584, slots), Tile(64, 128));
  EXPECT_EQ(detail::coopmat_default_tile(DType::kF16, 512, 14336, slots), Tile(128, 128));
  EXPECT_EQ(detail::coopmat_default_tile(DType::kF16, 1024, 4096, slots), Tile(64, 128));   // 256
  EXPECT_EQ(detail::coopmat_default_tile(DType::kF16, 1056, 4096, slots), Tile(128, 128));  // 288
  EXPECT_EQ(detail::coopmat_default_tile(DType::kF16, 2048, 4096, slots), Tile(128, 128));
  EXPECT_EQ(detail::coopmat_default_tile(DType::kF16, 512, 4096, 0), Tile(128, 128));  // unknown
  EXPECT_EQ(detail::coopmat_default_tile(DType::kQ4_K, 512, 4096, slots), Tile(256, 128));
}

// The matmul passes no units inside a Recorder::Concurrent group (its dispatches share the GPU):
// the recorder says when one is open, nested groups included.
TEST(MatmulCoopmatTile, RecorderKnowsConcurrentGroups) {
  Recorder rec(cpu_device());
  EXPECT_FALSE(rec.in_concurrent());
  {
    Recorder::Concurrent outer(rec);
    EXPECT_TRUE(rec.in_concurrent());
    {
      Recorder::Concurrent inner(rec);
      EXPECT_TRUE(rec.in_concurrent());
    }
    EXPECT_TRUE(rec.in_concurrent());
  }
  EXPECT_FALSE(rec.in_concurrent());
}

// The ceiling probe (shaders/coopmat_peak.comp, bench/ BM_coopmat_peak) computes what it claims:
// every subgroup's fragment products, repeated, from registers and from shared memory. Small
// integers in f16 keep every sum exact.
class CoopmatPeakTest : public VkTest, public ::testing::WithParamInterface<CoopmatApi> {};

TEST_P(CoopmatPeakTest, MatchesReference) {
  const CoopmatApi api = GetParam();
  if (!coopmat_api_usable(gpu->caps(), api))
    GTEST_SKIP() << gpu->caps().name << ": no usable " << coopmat_api_name(api);
  for (const auto [sg_m, sg_n, fm, fn] : {std::array<uint32_t, 4>{2, 2, 4, 4}, {1, 2, 2, 3}})
    for (const auto mode :
         {detail::CoopmatPeakMode::kRegisters, detail::CoopmatPeakMode::kShared,
          detail::CoopmatPeakMode::kSharedBarrier, detail::CoopmatPeakMode::kSharedTwoBarriers})
      for (const uint32_t copies : {1u, 2u}) {
        detail::CoopmatPeakArgs a;
        a.workgroups = 3, a.iters = 6, a.mode = mode, a.copies = copies;
        a.sg_m = sg_m, a.sg_n = sg_n, a.fm = fm, a.fn = fn;
        const int64_t bm = 16 * fm * sg_m, bn = 16 * fn * sg_n;
        Rng rng(bm * 7 + bn + uint32_t(mode));
        std::vector<float> src(size_t((bm + bn) * 32));
        std::vector<uint16_t> half(src.size());
        for (size_t i = 0; i < src.size(); ++i) {
          src[i] = float(int(rng.next() % 5) - 2);
          half[i] = cpu::f32_to_f16(src[i]);
        }
        std::vector<Buffer> keep;
        a.src = upload(*gpu, keep, DType::kF16, {bm + bn, 32}, half.data());
        a.y = alloc_tensor(*gpu, keep, DType::kF32, {detail::coopmat_peak_outputs(a)});
        Recorder rec(*gpu);
        detail::coopmat_peak(rec, api, a);
        rec.finish();
        const std::vector<float> got = download_f32(*gpu, a.y);
        const bool regs = mode == detail::CoopmatPeakMode::kRegisters;
        const int depth = regs ? 16 : 32, reps = regs ? int(a.iters) : int(a.iters) / 2;
        size_t bad = 0;
        for (uint32_t g = 0; g < a.workgroups; ++g)
          for (uint32_t s = 0; s < sg_m * sg_n; ++s)
            for (uint32_t i = 0; i < fm; ++i)
              for (uint32_t j = 0; j < fn; ++j)
                for (int r = 0; r < 16; ++r)
                  for (int c = 0; c < 16; ++c) {
                    const int64_t row = 16 * ((s % sg_m) * fm + i) + r;
                    const int64_t col = bm + 16 * ((s / sg_m) * fn + j) + c;
                    double ref = 0;
                    for (int k = 0; k < depth; ++k) ref += src[row * 32 + k] * src[col * 32 + k];
                    const size_t at =
                        size_t(((g * sg_m * sg_n + s) * fm * fn + i * fn + j) * 256 + r * 16 + c);
                    bad += got[at] != float(ref * reps);
                  }
        EXPECT_EQ(bad, 0u) << "mode " << uint32_t(mode) << ", " << copies << " copies, " << sg_m
                           << "x" << sg_n << " subgroups of " << fm << "x" << fn << " fragments";
      }
}

INSTANTIATE_TEST_SUITE_P(Apis, CoopmatPeakTest,
                         ::testing::Values(CoopmatApi::kNv, CoopmatApi::kKhr),
                         [](const auto& p) { return std::string(coopmat_api_name(p.param)); });

}  // namespace
}  // namespace kvz::test
