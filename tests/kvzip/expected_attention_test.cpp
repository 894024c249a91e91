// Expected Attention against a straightforward reference on small random inputs (tests/kvzip):
// pre-RoPE queries are rotated by the runtime's rope reference (as the forward would hand them
// to the hook), the statistics and the mean rotation are recomputed here with dense matrices
// (the rotation as rope() applied to basis vectors), and the kvpress formula is evaluated
// literally.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <span>

#include "kvzip/expected_attention.h"
#include "runtime/cpu/half.h"
#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

using Mat = std::vector<double>;  // row-major [d, d]

// rope() on x: [n_tokens, n_heads, head_dim] at positions pos, through the CPU reference op.
std::vector<float> apply_rope(const RopeSpec& r, std::vector<float> x, int n_heads, int head_dim,
                              const std::vector<int32_t>& pos) {
  Device& dev = cpu_device();
  std::vector<Buffer> keep;
  const auto n = static_cast<int64_t>(pos.size());
  RopeArgs a;
  a.x = upload_f32(dev, keep, {n, n_heads, head_dim}, x);
  a.pos = upload(dev, keep, DType::kI32, {n}, pos.data());
  a.inv_freq = upload_f32(dev, keep, {static_cast<int64_t>(r.inv_freq.size())}, r.inv_freq);
  a.style = r.style;
  a.rot_dims = r.rot_dims();
  a.attn_factor = r.attn_factor;
  cpu::rope_ref(a);
  return download_f32(dev, a.x);
}

// Mean over positions [p0, p0 + n) of the matrices R(p) with rope(e_i) = R(p) e_i.
Mat reference_rotation(const RopeSpec& r, int d, int p0, int n) {
  std::vector<float> basis(static_cast<size_t>(n * d * d), 0.0f);  // [n tokens, d "heads", d]
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) {
    pos[t] = p0 + t;
    for (int i = 0; i < d; ++i) basis[static_cast<size_t>((t * d + i) * d + i)] = 1.0f;
  }
  const std::vector<float> rot = apply_rope(r, basis, d, d, pos);
  Mat m(static_cast<size_t>(d * d), 0.0);
  for (int t = 0; t < n; ++t)
    for (int col = 0; col < d; ++col)
      for (int row = 0; row < d; ++row)
        m[static_cast<size_t>(row * d + col)] +=
            rot[static_cast<size_t>((t * d + col) * d + row)] / n;
  return m;
}

struct Problem {
  int n_layers = 2, n_heads = 4, n_kv_heads = 2, head_dim = 8;
  int64_t n_prefix = 3, n_ctx = 14;
  std::vector<RopeSpec> rope;
  std::vector<std::vector<float>> q_pre;  // [n_layers][N, n_heads, head_dim]
  std::vector<std::vector<HeadRows>> rows;
  int64_t n() const { return n_prefix + n_ctx; }
};

Problem make_problem(uint64_t seed) {
  Problem p;
  Rng rng(seed);
  // Layer 0: NeoX over the whole head; layer 1: adjacent pairs over half the head, YaRN-like
  // attn_factor. Frequencies large enough that the positions matter.
  p.rope.push_back({RopeStyle::kNeox, {1.0f, 0.3f, 0.05f, 0.001f}, 1.0f});
  p.rope.push_back({RopeStyle::kNormal, {0.7f, 0.02f}, 1.1f});
  const auto N = static_cast<size_t>(p.n());
  const auto hd = static_cast<size_t>(p.head_dim);
  for (int il = 0; il < p.n_layers; ++il) {
    std::vector<float> q(N * static_cast<size_t>(p.n_heads) * hd);
    for (size_t i = 0; i < q.size(); ++i)  // a per-dimension offset gives the mean some weight
      q[i] = rng.normal() + 0.8f * static_cast<float>((i % hd) % 3);
    p.q_pre.push_back(q);
    std::vector<HeadRows> layer(static_cast<size_t>(p.n_kv_heads));
    for (HeadRows& h : layer)
      for (size_t r = 0; r < N; ++r) {
        h.pos.push_back(static_cast<int32_t>(r));
        for (size_t i = 0; i < hd; ++i) {
          h.k.push_back(cpu::f32_to_f16(rng.normal()));
          h.v.push_back(cpu::f32_to_f16(rng.uniform(-2.0f, 2.0f)));
        }
      }
    p.rows.push_back(layer);
  }
  return p;
}

// kvpress ExpectedAttentionPress.score, literally, over the pre-RoPE queries.
Scores reference_scores(const Problem& p, const ExpectedAttentionOptions& o) {
  const int d = p.head_dim, H = p.n_heads, G = p.n_heads / p.n_kv_heads;
  const auto N = static_cast<int>(p.n());
  Scores s(p.n_layers, p.n_kv_heads, p.n_ctx);
  for (int il = 0; il < p.n_layers; ++il) {
    const std::vector<float>& q = p.q_pre[static_cast<size_t>(il)];
    auto qv = [&](int t, int h, int i) {
      return double(q[static_cast<size_t>((t * H + h) * d + i)]);
    };
    const Mat R = reference_rotation(p.rope[static_cast<size_t>(il)], d, N, o.n_future);
    std::vector<std::vector<double>> scores(static_cast<size_t>(p.n_kv_heads),
                                            std::vector<double>(static_cast<size_t>(N), 0.0));
    for (int h = 0; h < H; ++h) {
      const int n_q = N - o.n_sink;  // hidden_states[:, n_sink:]
      std::vector<double> mu(static_cast<size_t>(d), 0.0);
      for (int t = o.n_sink; t < N; ++t)
        for (int i = 0; i < d; ++i) mu[i] += qv(t, h, i) / n_q;
      Mat cov(static_cast<size_t>(d * d), 0.0);
      for (int t = o.n_sink; t < N; ++t)
        for (int i = 0; i < d; ++i)
          for (int j = 0; j < d; ++j)
            cov[i * d + j] += (qv(t, h, i) - mu[i]) * (qv(t, h, j) - mu[j]) / n_q;
      std::vector<double> mu2(static_cast<size_t>(d), 0.0);  // R mu
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) mu2[i] += R[i * d + j] * mu[j];
      Mat cov2(static_cast<size_t>(d * d), 0.0);  // R cov R^T
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j)
          for (int a = 0; a < d; ++a)
            for (int b = 0; b < d; ++b)
              cov2[i * d + j] += R[i * d + a] * cov[a * d + b] * R[j * d + b];
      const HeadRows& kv = p.rows[static_cast<size_t>(il)][static_cast<size_t>(h / G)];
      auto kf = [&](int r, int i) {
        return double(cpu::f16_to_f32(kv.k[static_cast<size_t>(r * d + i)]));
      };
      std::vector<double> z;
      for (int r = o.n_sink; r < N; ++r) {
        double zr = 0;
        for (int i = 0; i < d; ++i) zr += mu2[i] * kf(r, i) / std::sqrt(double(d));
        if (o.use_covariance)
          for (int i = 0; i < d; ++i)
            for (int j = 0; j < d; ++j) zr += kf(r, i) * cov2[i * d + j] * kf(r, j) / d / 2;
        z.push_back(zr);
      }
      double sum = 0;
      for (double x : z) sum += std::exp(x);
      for (int r = o.n_sink; r < N; ++r)
        scores[static_cast<size_t>(h / G)][static_cast<size_t>(r)] +=
            std::exp(z[r - o.n_sink]) / sum / G;
    }
    double mx = -1e300;
    for (int kh = 0; kh < p.n_kv_heads; ++kh) {
      const HeadRows& kv = p.rows[static_cast<size_t>(il)][static_cast<size_t>(kh)];
      for (int r = o.n_sink; r < N; ++r) {
        double vn = 0;
        for (int i = 0; i < d; ++i) {
          const double v = cpu::f16_to_f32(kv.v[static_cast<size_t>(r * d + i)]);
          vn += v * v;
        }
        double& x = scores[static_cast<size_t>(kh)][static_cast<size_t>(r)];
        if (o.use_vnorm) x = (x + o.epsilon) * std::sqrt(vn);
        mx = std::max(mx, x);
      }
    }
    for (int kh = 0; kh < p.n_kv_heads; ++kh)
      for (int64_t j = 0; j < p.n_ctx; ++j) {
        const int64_t r = p.n_prefix + j;
        s.at(il, kh, j) =
            static_cast<float>(r < o.n_sink ? mx : scores[kh][static_cast<size_t>(r)]);
      }
  }
  return s;
}

// What the engine computes: post-RoPE queries fed in two prefill chunks, scores from the cache.
Scores engine_scores(const Problem& p, const ExpectedAttentionOptions& o) {
  QueryStats st(p.n_layers, p.n_heads, p.head_dim, p.rope, o.n_sink);
  const int64_t split = 7, row = static_cast<int64_t>(p.n_heads) * p.head_dim;
  for (int il = 0; il < p.n_layers; ++il) {
    std::vector<int32_t> pos(static_cast<size_t>(p.n()));
    std::iota(pos.begin(), pos.end(), 0);
    const std::vector<float> post =
        apply_rope(p.rope[static_cast<size_t>(il)], p.q_pre[static_cast<size_t>(il)], p.n_heads,
                   p.head_dim, pos);
    st.add(il, std::span<const float>(post).subspan(0, static_cast<size_t>(split * row)), 0);
    st.add(il, std::span<const float>(post).subspan(static_cast<size_t>(split * row)),
           static_cast<int32_t>(split));
    EXPECT_EQ(st.count(il), p.n() - o.n_sink);
  }
  KvCacheConfig cfg;
  cfg.n_layers = p.n_layers;
  cfg.n_kv_heads = p.n_kv_heads;
  cfg.head_dim = p.head_dim;
  auto cache = KvCache::from_rows(cpu_device(), cfg, p.rows);
  return expected_attention_scores(st, *cache, p.n_prefix, p.n_ctx, o);
}

void expect_scores_near(const Scores& got, const Scores& want) {
  ASSERT_EQ(got.data.size(), want.data.size());
  std::vector<float> g = got.data, w = want.data;
  EXPECT_TRUE(all_close(g, w, 1e-7, 2e-5));
}

TEST(ExpectedAttention, MatchesTheKvpressFormula) {
  const Problem p = make_problem(11);
  ExpectedAttentionOptions o;
  o.n_future = 64;
  const Scores want = reference_scores(p, o);
  expect_scores_near(engine_scores(p, o), want);
  // Context row 0 is cache row 3 < n_sink: forced kept with the layer maximum.
  for (int il = 0; il < p.n_layers; ++il)
    for (int kh = 0; kh < p.n_kv_heads; ++kh)
      for (int64_t j = 1; j < p.n_ctx; ++j) {
        EXPECT_GE(want.at(il, kh, 0), want.at(il, kh, j));
      }
}

TEST(ExpectedAttention, OptionsMatchTheReference) {
  const Problem p = make_problem(12);
  ExpectedAttentionOptions o;  // kvpress defaults: 512 future positions
  expect_scores_near(engine_scores(p, o), reference_scores(p, o));
  o.use_covariance = false;
  o.epsilon = 0.01f;
  o.n_sink = 2;
  expect_scores_near(engine_scores(p, o), reference_scores(p, o));
  o.use_vnorm = false;
  expect_scores_near(engine_scores(p, o), reference_scores(p, o));
}

TEST(ExpectedAttention, MeanRotationMatchesRopeOnBasisVectors) {
  const RopeSpec r{RopeStyle::kNormal, {0.9f, 0.1f, 0.004f}, 1.0f};  // 6 of 8 dims rotated
  const Mat got = mean_rotation(r, 8, 100, 37), want = reference_rotation(r, 8, 100, 37);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << i;
}

TEST(ExpectedAttention, TooShortContextIsAnInputError) {
  QueryStats st(1, 2, 4, {RopeSpec{RopeStyle::kNeox, {1.0f, 0.1f}, 1.0f}});
  KvCacheConfig cfg;
  cfg.n_layers = 1;
  cfg.n_kv_heads = 1;
  cfg.head_dim = 4;
  std::vector<std::vector<HeadRows>> rows(1, std::vector<HeadRows>(1));
  for (int r = 0; r < 3; ++r) {
    rows[0][0].pos.push_back(r);
    rows[0][0].k.resize(rows[0][0].k.size() + 4, 0);
    rows[0][0].v.resize(rows[0][0].v.size() + 4, 0);
  }
  auto cache = KvCache::from_rows(cpu_device(), cfg, rows);
  EXPECT_THROW(expected_attention_scores(st, *cache, 1, 2), InputError);
}

}  // namespace
}  // namespace kvz::test
