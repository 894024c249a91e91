// Tests of KVzip reconstruction scoring (tests/runtime): Vulkan (scalar and tensor-core kernels)
// and the fast CPU path vs the CPU reference on paged caches with f16 and quantised keys, and the
// CPU reference vs a dense formula written here.
#include <cmath>
#include <functional>
#include <string>
#include <tuple>

#include "runtime/cpu/attention_fast.h"
#include "runtime/cpu/qdot.h"
#include "runtime/ops/paged_attention.h"
#include "tests/runtime/paged_cache_util.h"

namespace kvz::test {
namespace {

struct ScoreCase {
  std::string name;
  int head_dim, n_heads, n_kv_heads, n_q, n_sink, t0, m_t, gap;  // s0 = t0 + m_t + gap
  DType kt = DType::kF16;                                        // K storage (upload_cache)
};

struct ScoreProblem {
  HostCache cache;
  std::vector<float> q;
  int s0;
  float scale;
};

ScoreProblem make_score_problem(const ScoreCase& tc) {
  Rng rng(std::hash<std::string>{}(tc.name) & 0xffff);
  const int s0 = tc.t0 + tc.m_t + tc.gap;
  ScoreProblem p{
      make_cache(rng, tc.n_kv_heads, tc.head_dim, std::vector<int>(tc.n_kv_heads, s0 + tc.n_q)),
      rng.uniform_vec(size_t(tc.n_q) * tc.n_heads * tc.head_dim, -3, 3), s0,
      1.0f / std::sqrt(float(tc.head_dim))};
  return p;
}

std::vector<float> run_score(Device& dev, const ScoreCase& tc, const ScoreProblem& p,
                             Path path = Path::kOp) {
  std::vector<Buffer> keep;
  const DevCache c = upload_cache(dev, keep, p.cache, tc.kt);
  const int64_t nq = tc.n_q, nh = tc.n_heads, hd = tc.head_dim;
  AttnScoreArgs a;
  a.q = upload_f32(dev, keep, {nq, nh, hd}, p.q);
  a.k_pool = c.k, a.block_table = c.table;
  const std::vector<float> nan(size_t(tc.n_kv_heads) * tc.m_t, std::nanf(""));
  a.score = upload_f32(dev, keep, {tc.n_kv_heads, tc.m_t}, nan);
  a.lse = alloc_tensor(dev, keep, DType::kF32, {nq, nh});
  a.q16 = alloc_tensor(dev, keep, DType::kF16, {nq, nh, hd});
  a.n_sink = tc.n_sink, a.t0 = tc.t0, a.t1 = tc.t0 + tc.m_t, a.s0 = p.s0, a.scale = p.scale;
  if (path == Path::kRef) cpu::attn_score_ref(a);
  if (path == Path::kFast1 || path == Path::kFast3)
    cpu::attn_score_fast(a, path == Path::kFast1 ? 1 : 3);
  if (path == Path::kOp) {
    Recorder rec(dev);
    attn_score(rec, a);
    rec.finish();
  }
  return download_f32(dev, a.score);
}

// Dense formula: the full probability matrix over the gathered key set, then the column max.
std::vector<float> dense_score(const ScoreCase& tc, const ScoreProblem& p) {
  const HostCache& c = p.cache;
  const int hd = tc.head_dim, group = tc.n_heads / tc.n_kv_heads;
  std::vector<float> out(size_t(tc.n_kv_heads) * tc.m_t, 0.0f);
  for (int hq = 0; hq < tc.n_heads; ++hq) {
    const int h = hq / group;
    for (int i = 0; i < tc.n_q; ++i) {
      std::vector<int> keys;  // rows of K_i; the chunk's are keys[n_sink, n_sink + m_t)
      for (int t = 0; t < tc.n_sink; ++t) keys.push_back(t);
      for (int t = tc.t0; t < tc.t0 + tc.m_t; ++t) keys.push_back(t);
      for (int t = p.s0; t <= p.s0 + i; ++t) keys.push_back(t);
      std::vector<long double> z(keys.size());
      long double mx = -1e300L, sum = 0;
      for (size_t u = 0; u < keys.size(); ++u) {
        const size_t ko = size_t(c.slot(h, keys[u])) * hd, qo = (size_t(i) * tc.n_heads + hq) * hd;
        long double s = 0;
        for (int d = 0; d < hd; ++d) s += (long double)p.q[qo + d] * cpu::f16_to_f32(c.k[ko + d]);
        z[u] = s * p.scale, mx = std::max(mx, z[u]);
      }
      for (auto& x : z) sum += (x = std::exp(x - mx));
      for (int j = 0; j < tc.m_t; ++j) {
        float& o = out[size_t(h) * tc.m_t + j];
        o = std::max(o, float(z[tc.n_sink + j] / sum));
      }
    }
  }
  return out;
}

const ScoreCase kScoreCases[] = {
    {"hd8_gqa2", 8, 8, 4, 37, 5, 9, 70, 13},       {"hd64_gqa1_no_gap", 64, 4, 4, 50, 3, 3, 100, 0},
    {"hd128_gqa4", 128, 8, 2, 45, 30, 64, 90, 40}, {"hd256_gqa8", 256, 16, 2, 21, 4, 4, 33, 7},
    {"hd64_no_sink", 64, 4, 2, 19, 0, 0, 41, 5},
};

class AttnScoreTest : public VkTest, public ::testing::WithParamInterface<ScoreCase> {};
class AttnScoreRefTest : public ::testing::TestWithParam<ScoreCase> {};

// Scores are probabilities in [0, 1]; the error of exp(s - lse) is relative, about the absolute
// error of the f32 logit and log-sum-exp (head_dim-long dots of |q| <= 3, |k| <= 1).
// The tensor-core kernels round the scaled queries to f16: logits (and lse) move by up to
// 2^-11 * sum |q k| * scale <= 2^-11 * 3 head_dim * scale each. Quantised keys are rounded to f16
// once dequantised (both kernel families keep key tiles in f16): the same term once more.
double score_rtol(const ScoreCase& tc, const ScoreProblem& p, bool coopmat) {
  const double k16 = tc.kt != DType::kF16 ? 2.0 / 2048 * 3.0 * tc.head_dim * p.scale : 0.0;
  return k16 + (coopmat ? 2.0 / 2048 * (3.0 * tc.head_dim * p.scale + 2)
                        : 8 * 1.2e-7 * (3.0 * tc.head_dim * p.scale + 16));
}

TEST_P(AttnScoreTest, MatchesReference) {
  const ScoreCase& tc = GetParam();
  const ScoreProblem p = make_score_problem(tc);
  const bool cm = paged_attention_coopmat_supported(*gpu, tc.head_dim);
  EXPECT_TRUE(all_close(run_score(*gpu, tc, p), run_score(*cpu, tc, p, Path::kRef), 1e-6,
                        score_rtol(tc, p, cm)))
      << (cm ? "tensor-core kernels" : "scalar kernels");
}

// AttnScoreTest's cases through each cooperative-matrix extension (PagedAttentionCoopmatTest).
class AttnScoreCoopmatTest
    : public VkTest,
      public ::testing::WithParamInterface<std::tuple<ScoreCase, CoopmatApi>> {};

TEST_P(AttnScoreCoopmatTest, MatchesReference) {
  const auto& [tc, api] = GetParam();
  const ScopedTuning scope(*gpu, [&](Tuning& tn) { tn.coopmat = api; });
  if (!paged_attention_coopmat_supported(*gpu, tc.head_dim))
    GTEST_SKIP() << gpu->caps().name << ": no " << coopmat_api_name(api)
                 << " tensor-core scoring for head_dim " << tc.head_dim;
  const ScoreProblem p = make_score_problem(tc);
  EXPECT_TRUE(all_close(run_score(*gpu, tc, p), run_score(*cpu, tc, p, Path::kRef), 1e-6,
                        score_rtol(tc, p, true)))
      << coopmat_api_name(api) << " tensor-core kernels";
}

TEST_P(AttnScoreRefTest, MatchesDenseFormula) {
  const ScoreCase& tc = GetParam();
  const ScoreProblem p = make_score_problem(tc);
  EXPECT_TRUE(
      all_close(run_score(cpu_device(), tc, p, Path::kRef), dense_score(tc, p), 1e-9, 1e-6));
}

// Unaligned chunk and self ranges (tiles cut at block boundaries), SmolLM2's group of 3, one row.
const ScoreCase kFastScoreCases[] = {{"smollm_hd64_gqa3", 64, 9, 3, 150, 4, 37, 300, 11},
                                     {"hd128_gqa4_unaligned", 128, 8, 2, 70, 7, 45, 77, 3},
                                     {"hd8_gqa8_aligned", 8, 8, 1, 40, 0, 32, 64, 0},
                                     {"hd256_gqa1_one_row", 256, 2, 2, 5, 1, 1, 1, 0}};

class AttnScoreFastTest : public ::testing::TestWithParam<ScoreCase> {};

// Same derivation as AttnScoreTest (f32 logits and log-sum-exp), on every SIMD level this CPU runs.
TEST_P(AttnScoreFastTest, MatchesReference) {
  const ScoreCase& tc = GetParam();
  const ScoreProblem p = make_score_problem(tc);
  Device& dev = cpu_device();
  const double rtol = 8 * 1.2e-7 * (3.0 * tc.head_dim * p.scale + 16);
  const auto ref = run_score(dev, tc, p, Path::kRef);
  EXPECT_TRUE(all_close(run_score(dev, tc, p, Path::kOp), run_score(dev, tc, p, Path::kFast3), 0.0))
      << "op on the CPU";
  for (int64_t target : cpu::simd_targets()) {
    cpu::simd_force_target(target);
    const auto fast = run_score(dev, tc, p, Path::kFast3);
    EXPECT_TRUE(all_close(fast, ref, 1e-7, rtol)) << cpu::simd_name(target);
    EXPECT_TRUE(all_close(run_score(dev, tc, p, Path::kFast1), fast, 0.0))
        << cpu::simd_name(target);
  }
  cpu::simd_force_target(0);
}

std::string score_case_name(const ::testing::TestParamInfo<ScoreCase>& param_info) {
  return param_info.param.name;
}
INSTANTIATE_TEST_SUITE_P(Shapes, AttnScoreTest, ::testing::ValuesIn(kScoreCases), score_case_name);
INSTANTIATE_TEST_SUITE_P(Tiling, AttnScoreTest, ::testing::ValuesIn(kFastScoreCases),
                         score_case_name);
INSTANTIATE_TEST_SUITE_P(Shapes, AttnScoreCoopmatTest,
                         ::testing::Combine(::testing::ValuesIn(kScoreCases),
                                            ::testing::ValuesIn(kCoopmatApis)),
                         api_case_name<ScoreCase>);
INSTANTIATE_TEST_SUITE_P(Tiling, AttnScoreCoopmatTest,
                         ::testing::Combine(::testing::ValuesIn(kFastScoreCases),
                                            ::testing::ValuesIn(kCoopmatApis)),
                         api_case_name<ScoreCase>);
// Quantised keys (head_dim a multiple of 32).
const ScoreCase kQuantScoreCases[] = {
    {"hd128_gqa4_q8_0", 128, 8, 2, 45, 30, 64, 90, 40, DType::kQ8_0},
    {"hd64_gqa3_q4_0", 64, 9, 3, 150, 4, 37, 300, 11, DType::kQ4_0},
    {"hd64_no_sink_q8_0", 64, 4, 2, 19, 0, 0, 41, 5, DType::kQ8_0}};
INSTANTIATE_TEST_SUITE_P(Quant, AttnScoreTest, ::testing::ValuesIn(kQuantScoreCases),
                         score_case_name);
INSTANTIATE_TEST_SUITE_P(Quant, AttnScoreCoopmatTest,
                         ::testing::Combine(::testing::ValuesIn(kQuantScoreCases),
                                            ::testing::ValuesIn(kCoopmatApis)),
                         api_case_name<ScoreCase>);
INSTANTIATE_TEST_SUITE_P(Shapes, AttnScoreRefTest, ::testing::ValuesIn(kScoreCases),
                         score_case_name);
INSTANTIATE_TEST_SUITE_P(Shapes, AttnScoreFastTest, ::testing::ValuesIn(kScoreCases),
                         score_case_name);
INSTANTIATE_TEST_SUITE_P(Tiling, AttnScoreFastTest, ::testing::ValuesIn(kFastScoreCases),
                         score_case_name);

}  // namespace
}  // namespace kvz::test
