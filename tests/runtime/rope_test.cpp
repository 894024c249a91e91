// Tests of RoPE: frequency tables against independently computed values, and the rope op on the
// GPU against the CPU reference (tests/runtime).
#include "runtime/ops/rope.h"

#include <cmath>
#include <numbers>
#include <tuple>

#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

using Type = RopeScaling::Type;

void expect_rel_near(float got, double want, double rel, int i) {
  EXPECT_NEAR(got, want, rel * std::abs(want)) << "inv_freq[" << i << "]";
}

TEST(RopeFreqs, PlainAndLinear) {
  const auto f = rope_inv_freqs(10000.0f, 64, {});
  ASSERT_EQ(f.size(), 32u);
  for (int i = 0; i < 32; ++i) expect_rel_near(f[i], std::pow(10000.0, -2.0 * i / 64), 1e-6, i);
  RopeScaling lin{Type::kLinear, 8.0f};
  const auto g = rope_inv_freqs(1e6f, 128, lin);
  for (int i = 0; i < 64; ++i) expect_rel_near(g[i], std::pow(1e6, -2.0 * i / 128) / 8, 1e-6, i);
  EXPECT_EQ(rope_attn_factor(lin), 1.0f);
}

// Llama 3.1 8B: theta 500000, head_dim 128, factor 8, low 1, high 4, original context 8192.
// Values from the HF `_compute_llama3_parameters` rule in plain Python (double):
//   python3 -c "import math;b,d,f,lo,hi,L=500000.0,128,8.0,1.0,4.0,8192
//   inv=[b**(-i/d) for i in range(0,d,2)]
//   def g(x):
//     w=2*math.pi/x
//     if w<L/hi: return x
//     if w>L/lo: return x/f
//     s=(L/w-lo)/(hi-lo); return (1-s)*x/f+s*x
//   print([(i,'%.9e'%g(inv[i])) for i in (0,1,20,30,35,40,42,45,50,63)])"
TEST(RopeFreqs, Llama3MatchesHfFormula) {
  const RopeScaling s{Type::kLlama3, 8.0f, 1.0f, 4.0f, 8192};
  const auto f = rope_inv_freqs(500000.0f, 128, s);
  ASSERT_EQ(f.size(), 64u);
  const std::pair<int, double> table[] = {
      {0, 1.000000000e+00},  {1, 8.146172339e-01},  {20, 1.656044008e-02}, {30, 1.371893568e-03},
      {35, 9.556212354e-05}, {40, 3.428102196e-05}, {42, 2.274892860e-05}, {45, 1.229763868e-05},
      {50, 4.411534675e-06}, {63, 3.068925989e-07}};
  for (auto [i, want] : table) expect_rel_near(f[i], want, 2e-7, i);
  // Every entry against the formula evaluated here, in double, written out independently: the
  // three bands by wavelength, and the blend in between.
  int n_kept = 0, n_scaled = 0, n_blend = 0;
  for (int i = 0; i < 64; ++i) {
    const double inv = 1.0 / std::pow(500000.0, 2.0 * i / 128);
    const double wavelen = 2 * std::numbers::pi / inv;
    double want;
    if (wavelen < 8192.0 / 4) {
      want = inv, ++n_kept;
    } else if (wavelen > 8192.0 / 1) {
      want = inv / 8, ++n_scaled;
    } else {
      const double smooth = (8192.0 / wavelen - 1) / (4 - 1);
      want = (1 - smooth) * inv / 8 + smooth * inv, ++n_blend;
    }
    expect_rel_near(f[i], want, 1e-6, i);
  }
  EXPECT_GT(n_kept, 0);
  EXPECT_GT(n_scaled, 0);
  EXPECT_GT(n_blend, 0);
  EXPECT_EQ(rope_attn_factor(s), 1.0f);
}

// Qwen3 with the KVzip repo's YaRN: theta 1e6, head_dim 128, factor 4, original context 32768.
// Values from HF `_compute_yarn_parameters` (beta_fast 32, beta_slow 1, truncate) in Python:
//   python3 -c "import math;b,d,f,L=1e6,128,4.0,32768
//   cd=lambda r:(d*math.log(L/(r*2*math.pi)))/(2*math.log(b))
//   lo,hi=max(math.floor(cd(32)),0),min(math.ceil(cd(1)),d-1)
//   r=lambda i:min(max((i-lo)/(hi-lo),0),1); inv=[b**(-i/d) for i in range(0,d,2)]
//   print([(i,'%.9e'%(inv[i]/f*r(i)+inv[i]*(1-r(i)))) for i in (0,10,20,30,40,45,50,63)],
//         0.1*math.log(f)+1)"          (correction range: 23 .. 40)
TEST(RopeFreqs, YarnMatchesHfFormula) {
  RopeScaling s{Type::kYarn, 4.0f};
  s.original_context = 32768;
  const auto f = rope_inv_freqs(1e6f, 128, s);
  const std::pair<int, double> table[] = {
      {0, 1.000000000e+00},  {10, 1.154781985e-01}, {20, 1.333521432e-02}, {30, 1.064360981e-03},
      {40, 4.445698525e-05}, {45, 1.510740976e-05}, {50, 5.133812566e-06}, {63, 3.102344402e-07}};
  for (auto [i, want] : table) expect_rel_near(f[i], want, 2e-7, i);
  EXPECT_NEAR(rope_attn_factor(s), 1.138629436111989, 1e-7);
  EXPECT_EQ(rope_attn_factor({Type::kYarn, 1.0f}), 1.0f);
}

// The reference on a hand-checked case: one head of 6 dims, rot_dims 4, both pairings.
TEST(RopeRef, PairsAndPartialRotation) {
  Device& dev = cpu_device();
  std::vector<Buffer> keep;
  const std::vector<float> x0 = {1, 2, 3, 4, 5, 6}, freqs = {0.5f, 0.25f};
  const int32_t pos = 3;
  for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
    RopeArgs a;
    a.x = upload_f32(dev, keep, {1, 1, 6}, x0);
    a.pos = upload(dev, keep, DType::kI32, {1}, &pos);
    a.inv_freq = upload_f32(dev, keep, {2}, freqs);
    a.style = style;
    a.rot_dims = 4;
    a.attn_factor = 2.0f;
    Recorder rec(dev);
    rope(rec, a);
    const auto y = download_f32(dev, a.x);
    // Pair i rotates dims (i0[i], i1[i]): adjacent (0,1), (2,3) or rotate-half (0,2), (1,3).
    const bool neox = style == RopeStyle::kNeox;
    const int i0[2] = {0, neox ? 1 : 2}, i1[2] = {neox ? 2 : 1, 3};
    for (int i = 0; i < 2; ++i) {
      const double th = 3.0 * freqs[i], c = 2 * std::cos(th), s = 2 * std::sin(th);
      EXPECT_NEAR(y[i0[i]], x0[i0[i]] * c - x0[i1[i]] * s, 1e-5);
      EXPECT_NEAR(y[i1[i]], x0[i0[i]] * s + x0[i1[i]] * c, 1e-5);
    }
    EXPECT_EQ(y[4], 5.0f);
    EXPECT_EQ(y[5], 6.0f);
  }
}

// (head_dim, n_heads, style, partial rotation)
using Param = std::tuple<int, int, RopeStyle, bool>;
class RopeTest : public VkTest, public ::testing::WithParamInterface<Param> {};

TEST_P(RopeTest, MatchesReference) {
  const auto [head_dim, n_heads, style, partial] = GetParam();
  const int64_t n_tokens = 13, nh = n_heads, hd = head_dim;
  const int rot_dims = partial ? head_dim / 4 * 3 / 2 * 2 : head_dim;  // 48 of 64, 96 of 128 ...
  Rng rng(head_dim + n_heads * 3 + partial);
  const auto x = rng.uniform_vec(n_tokens * nh * hd, -2, 2);
  // Positions: small ones, and large ones that stress the angle range reduction.
  std::vector<int32_t> pos(n_tokens);
  for (int t = 0; t < n_tokens; ++t) pos[t] = t < 5 ? t : static_cast<int32_t>(rng.next() % 200000);
  RopeScaling sc{RopeScaling::Type::kYarn, 4.0f};
  const auto freqs = rope_inv_freqs(1e6f, rot_dims, sc);
  Tensor out[2];
  std::vector<Buffer> keep[2];
  Device* devs[2] = {gpu, cpu};
  for (int i = 0; i < 2; ++i) {
    RopeArgs a;
    a.x = out[i] = upload_f32(*devs[i], keep[i], {n_tokens, nh, hd}, x);
    a.pos = upload(*devs[i], keep[i], DType::kI32, {n_tokens}, pos.data());
    a.inv_freq = upload_f32(*devs[i], keep[i], {rot_dims / 2}, freqs);
    a.style = style;
    a.rot_dims = partial ? rot_dims : 0;
    a.attn_factor = rope_attn_factor(sc);
    Recorder rec(*devs[i]);
    rope(rec, a);
    rec.finish();
  }
  const auto got = download_f32(*gpu, out[0]), ref = download_f32(*cpu, out[1]);
  // Same fp32 angle on both sides and an exact range reduction, so only the driver's cos/sin on
  // [-pi, pi] and two products differ: a few ulp of |x| * attn_factor <= 2.3 (lavapipe: ~1e-6).
  const double tol = 16 * 1.2e-7 * 2.3;
  EXPECT_TRUE(all_close(got, ref, tol));
  for (int64_t r = 0; r < n_tokens * nh; ++r)  // unrotated tail is copied bit-exactly
    for (int64_t d = rot_dims; d < hd; ++d) ASSERT_EQ(got[r * hd + d], x[r * hd + d]);
}

INSTANTIATE_TEST_SUITE_P(Shapes, RopeTest,
                         ::testing::Combine(::testing::Values(64, 128, 256),
                                            ::testing::Values(1, 4, 8),
                                            ::testing::Values(RopeStyle::kNormal, RopeStyle::kNeox),
                                            ::testing::Bool()));

}  // namespace
}  // namespace kvz::test
