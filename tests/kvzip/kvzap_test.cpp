// KVzap pieces against independent references (tests/kvzip): the surrogates' forward vs naive
// f64 loops, the weights file (round trip, corrupt files refused), the KVzip+ target vs a direct
// evaluation of its definition, training (ridge recovers a linear map, AdamW lowers the MSE), and
// the threshold + window rule, post-hoc and online over a real ragged cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "kvzip/kvzap.h"
#include "kvzip/kvzap_train.h"
#include "kvzip/pruner.h"
#include "kvzip/splitmix.h"
#include "runtime/error.h"
#include "tests/kvzip/kv_util.h"

namespace kvz::test {
namespace {

// Uniform [-1, 1) values from splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t s) : sm_(s) {}
  float next() { return static_cast<float>(sm_.uniform() * 2.0 - 1.0); }
  void fill(std::vector<float>& v, float scale = 1.0f) {
    for (float& x : v) x = scale * next();
  }

 private:
  SplitMix64 sm_;
};

KvzapModel random_model(KvzapKind kind, int L, int D, int F, int H, uint64_t seed) {
  KvzapModel m(kind, L, D, F, H, "test-model");
  Rng rng(seed);
  for (int il = 0; il < L; ++il) {
    KvzapLayer& l = m.layer(il);
    rng.fill(l.w1, 0.5f);
    rng.fill(l.b1, 0.5f);
    rng.fill(l.w2, 0.5f);
    rng.fill(l.b2, 0.5f);
  }
  return m;
}

// Naive f64 forward from the definition (ALGORITHMS.md 3.2).
std::vector<double> reference_predict(const KvzapModel& m, int il, const std::vector<float>& x,
                                      int64_t n) {
  const int D = m.d_model(), F = m.d_hidden(), H = m.n_kv_heads();
  const KvzapLayer& l = m.layer(il);
  std::vector<double> out;
  for (int64_t t = 0; t < n; ++t) {
    if (m.kind() == KvzapKind::kLinear) {
      for (int h = 0; h < H; ++h) {
        double s = l.b1[h];
        for (int e = 0; e < D; ++e) s += double{l.w1[h * D + e]} * x[t * D + e];
        out.push_back(s);
      }
      continue;
    }
    std::vector<double> hid(F);
    for (int f = 0; f < F; ++f) {
      double s = l.b1[f];
      for (int e = 0; e < D; ++e) s += double{l.w1[f * D + e]} * x[t * D + e];
      hid[f] = 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0)));
    }
    for (int h = 0; h < H; ++h) {
      double s = l.b2[h];
      for (int f = 0; f < F; ++f) s += double{l.w2[h * F + f]} * hid[f];
      out.push_back(s);
    }
  }
  return out;
}

class KvzapKindTest : public ::testing::TestWithParam<KvzapKind> {};

TEST_P(KvzapKindTest, ForwardMatchesNaiveReference) {
  const int L = 2, D = 24, F = 7, H = 3;
  const int64_t n = 11;
  KvzapModel m = random_model(GetParam(), L, D, F, H, 7);
  std::vector<float> x(static_cast<size_t>(n * D));
  Rng(3).fill(x);
  for (int il = 0; il < L; ++il) {
    std::vector<float> got(static_cast<size_t>(n * H));
    m.predict(il, x.data(), n, got.data());
    const std::vector<double> want = reference_predict(m, il, x, n);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], want[i], 1e-4 * (1.0 + std::abs(want[i]))) << "layer " << il << " " << i;
    }
  }
}

std::string temp_file(const char* name) {
  return (std::filesystem::temp_directory_path() / fmt::format("kvz_{}_{}", name, ::getpid()))
      .string();
}

TEST_P(KvzapKindTest, WeightsFileRoundTripsExactly) {
  KvzapModel m = random_model(GetParam(), 3, 16, 5, 2, 11);
  const std::string path = temp_file("kvzap_rt");
  m.save(path);
  KvzapModel r = KvzapModel::load(path);
  std::remove(path.c_str());
  EXPECT_EQ(r.kind(), m.kind());
  EXPECT_EQ(r.n_layers(), 3);
  EXPECT_EQ(r.d_model(), 16);
  EXPECT_EQ(r.d_hidden(), m.d_hidden());
  EXPECT_EQ(r.n_kv_heads(), 2);
  EXPECT_EQ(r.model_identity(), "test-model");
  for (int il = 0; il < 3; ++il) {
    EXPECT_EQ(r.layer(il).w1, m.layer(il).w1);
    EXPECT_EQ(r.layer(il).b1, m.layer(il).b1);
    EXPECT_EQ(r.layer(il).w2, m.layer(il).w2);
    EXPECT_EQ(r.layer(il).b2, m.layer(il).b2);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, KvzapKindTest,
                         ::testing::Values(KvzapKind::kLinear, KvzapKind::kMlp),
                         [](const auto& p) { return std::string(kvzap_kind_name(p.param)); });

std::vector<char> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_all(const std::string& path, const std::vector<char>& b) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(b.data(), static_cast<std::streamsize>(b.size()));
}

TEST(KvzapFile, CorruptFilesAreRefused) {
  KvzapModel m = random_model(KvzapKind::kMlp, 2, 8, 4, 2, 5);
  const std::string path = temp_file("kvzap_bad");
  m.save(path);
  const std::vector<char> good = read_all(path);
  auto expect_format_error = [&](std::vector<char> b, const char* what) {
    write_all(path, b);
    EXPECT_THROW(KvzapModel::load(path), FormatError) << what;
  };
  std::vector<char> b = good;
  b[b.size() / 2] ^= 0x10;  // a weight bit
  expect_format_error(b, "flipped weight bit");
  b = good;
  b[0] = 'X';
  expect_format_error(b, "magic");
  b = good;
  b.resize(b.size() - 5);
  expect_format_error(b, "truncated");
  b = good;
  b.push_back(0);
  expect_format_error(b, "trailing byte");
  b = good;
  b[12] = 7;  // kind
  expect_format_error(b, "kind");
  b.assign(good.begin(), good.begin() + 10);
  expect_format_error(b, "header only");
  write_all(path, good);
  EXPECT_NO_THROW(KvzapModel::load(path));
  std::remove(path.c_str());
  EXPECT_THROW(KvzapModel::load(path), InputError);
}

// The KVzip+ target from its definition with the explicit W_O (no Gram matrix), f64 throughout.
TEST(KvzapTargets, MatchDirectEvaluationOfTheDefinition) {
  const int Hq = 4, H = 2, G = Hq / H, d = 8, D = 12;
  const int64_t T = 19, pb = 3, pe = 9, rb = 12, re = 18;
  const float scale = 0.35f;
  Rng rng(17);
  std::vector<float> q(T * Hq * d), k(T * H * d), v(T * H * d), xn(T), wo(D * Hq * d);
  rng.fill(q, 2.0f);
  rng.fill(k, 2.0f);
  rng.fill(v);
  rng.fill(wo);
  for (float& x : xn) x = 1.5f + rng.next();
  std::vector<float> gram(static_cast<size_t>(Hq * d * d));
  for (int qh = 0; qh < Hq; ++qh)
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) {
        double s = 0;
        for (int e = 0; e < D; ++e)
          s += double{wo[e * Hq * d + qh * d + a]} * wo[e * Hq * d + qh * d + b];
        gram[(qh * d + a) * d + b] = static_cast<float>(s);
      }
  KvzapTargetInputs in{Hq,       H,         d,           T,  scale, q.data(), k.data(),
                       v.data(), xn.data(), gram.data(), pb, pe,    rb,       re};
  const std::vector<float> got = kvzap_targets(in);
  ASSERT_EQ(got.size(), static_cast<size_t>((pe - pb) * H));
  for (int h = 0; h < H; ++h)
    for (int64_t i = pb; i < pe; ++i) {
      double best = 0;
      for (int g = 0; g < G; ++g) {
        const int qh = h * G + g;
        double wv2 = 0;  // ||W_O^(q) v_i||^2
        for (int e = 0; e < D; ++e) {
          double s = 0;
          for (int c = 0; c < d; ++c)
            s += double{wo[e * Hq * d + qh * d + c]} * v[(i * H + h) * d + c];
          wv2 += s * s;
        }
        for (int64_t j = rb; j < re; ++j) {
          std::vector<double> z(static_cast<size_t>(j + 1));
          double mx = -1e300, sum = 0;
          for (int64_t c = 0; c <= j; ++c) {
            double s = 0;
            for (int e = 0; e < d; ++e)
              s += double{q[(j * Hq + qh) * d + e]} * k[(c * H + h) * d + e];
            z[c] = s * scale;
            mx = std::max(mx, z[c]);
          }
          for (double zc : z) sum += std::exp(zc - mx);
          best = std::max(best, std::exp(z[i] - mx) / sum * std::sqrt(wv2) / xn[j]);
        }
      }
      EXPECT_NEAR(got[(i - pb) * H + h], std::log(best), 1e-4) << "head " << h << " col " << i;
    }
}

KvzapLayerData synthetic_data(int64_t n, int D, int H, bool nonlinear, uint64_t seed) {
  KvzapLayerData d{D, H, {}, {}};
  Rng rng(seed);
  d.x.resize(static_cast<size_t>(n * D));
  rng.fill(d.x);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < H; ++h) {
      double s = -5.0 + h;
      for (int e = 0; e < D; ++e) s += (0.3 * ((e + h) % 3) - 0.3) * d.x[t * D + e];
      if (nonlinear)
        s = -5.0 + 3.0 * std::tanh(2.0 * s + 10.0 - 2.0 * h) + d.x[t * D] * d.x[t * D + 1];
      d.y.push_back(static_cast<float>(s));
    }
  return d;
}

TEST(KvzapTrain, RidgeRecoversALinearMap) {
  const int D = 10, H = 2;
  KvzapLayerData d = synthetic_data(400, D, H, false, 23);
  KvzapModel m(KvzapKind::kLinear, 1, D, 0, H, "");
  fit_linear(d, m.layer(0), 1e-6);
  for (int h = 0; h < H; ++h) {
    EXPECT_NEAR(m.layer(0).b1[h], -5.0 + h, 1e-3);
    for (int e = 0; e < D; ++e) {
      EXPECT_NEAR(m.layer(0).w1[h * D + e], 0.3 * ((e + h) % 3) - 0.3, 1e-3);
    }
  }
  KvzapFitStats st = evaluate_fit(m, 0, synthetic_data(100, D, H, false, 29));
  for (double r : st.pearson_r2) EXPECT_GT(r, 0.999);
}

TEST(KvzapTrain, MlpLowersTheLossAndBeatsTheLinearFitOnANonlinearTarget) {
  const int D = 6, H = 2, F = 16;
  KvzapLayerData train = synthetic_data(2000, D, H, true, 31),
                 val = synthetic_data(500, D, H, true, 37);
  KvzapModel mlp(KvzapKind::kMlp, 1, D, F, H, ""), lin(KvzapKind::kLinear, 1, D, 0, H, "");
  MlpTrainOptions o;
  o.epochs = 40;
  o.batch = 64;
  o.lr = 1e-2f;
  const std::vector<double> loss = fit_mlp(train, F, mlp.layer(0), o);
  ASSERT_EQ(loss.size(), 40u);
  EXPECT_LT(loss.back(), 0.5 * loss.front());
  fit_linear(train, lin.layer(0));
  EXPECT_LT(evaluate_fit(mlp, 0, val).mse, evaluate_fit(lin, 0, val).mse);
}

Scores ramp_scores(int L, int H, int64_t n_ctx) {
  Scores s(L, H, n_ctx);
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih)
      for (int64_t j = 0; j < n_ctx; ++j)
        s.at(il, ih, j) = -static_cast<float>((j * 7 + ih * 3 + il) % 10);
  return s;
}

TEST(KvzapRule, PostHocKeepsPrefixWindowAndHighScores) {
  const int L = 2, H = 2, window = 5;
  const int64_t n_prefix = 3, n_ctx = 20, n_rows = n_prefix + n_ctx + 2;  // 2 query rows
  const float tau = -4.5f;
  Scores s = ramp_scores(L, H, n_ctx);
  KeepSet k = prune_threshold(s, tau, window, n_prefix, n_rows, {true, false});
  int64_t kept = 0, total = 0;
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih) {
      std::vector<int32_t> want;
      for (int64_t row = 0; row < n_rows; ++row) {
        const int64_t j = row - n_prefix;
        const bool ctx = j >= 0 && j < n_ctx;
        const bool keep = !ctx || il == 1 || row >= n_rows - window || s.at(il, ih, j) >= tau;
        if (keep) want.push_back(static_cast<int32_t>(row));
        if (ctx && il == 0) total++, kept += keep;
      }
      EXPECT_EQ(k.rows[il][ih], want) << il << "/" << ih;
    }
  EXPECT_EQ(k.n_total, total);
  EXPECT_EQ(k.n_kept, kept);
  EXPECT_LT(k.kept_fraction, 1.0);
}

class KvzapEvictorTest : public DeviceTest {};

// Online eviction over a real ragged cache, chunk by chunk, against the post-hoc rule: rows left
// the window are decided once, the window and the prefix stay, evicted rows are gone.
TEST_P(KvzapEvictorTest, OnlineMatchesPostHocAndKeepsTheWindow) {
  KvCacheConfig cfg{2, 2, 4, {}};
  const int window = 6;
  const int32_t n_prefix = 3, n_ctx = 25;
  const float tau = -4.5f;
  KvzapOptions o;
  o.threshold = tau;
  o.window = window;
  KvCache cache(*dev, cfg);
  KvzapEvictor ev(cfg, o);
  Scores s = ramp_scores(2, 2, n_ctx);
  Recorder rec(*dev);
  append_tokens(*dev, cache, 0, n_prefix);
  int32_t next = n_prefix;
  for (int chunk : {4, 9, 1, 11}) {  // prefill chunks, then decode-like single steps
    append_tokens(*dev, cache, next, chunk);
    std::vector<int32_t> pos;
    for (int t = 0; t < chunk; ++t) pos.push_back(next + t);
    for (int il = 0; il < 2; ++il) {
      std::vector<float> sc;
      for (int32_t p : pos)
        for (int ih = 0; ih < 2; ++ih) sc.push_back(s.at(il, ih, p - n_prefix));
      ev.push(il, pos, sc.data());
    }
    next += chunk;
    KeepSet k = ev.decide(cache, next, n_prefix);
    if (!k.rows.empty()) cache.compact(rec, k);
    for (int il = 0; il < 2; ++il)
      for (int ih = 0; ih < 2; ++ih) {
        const std::vector<int32_t>& p = cache.positions(il, ih);
        for (int32_t w = std::max(0, next - window); w < next; ++w) {
          EXPECT_TRUE(std::binary_search(p.begin(), p.end(), w)) << "window row " << w << " lost";
        }
        for (int32_t w = 0; w < n_prefix; ++w)
          EXPECT_TRUE(std::binary_search(p.begin(), p.end(), w));
      }
  }
  ASSERT_EQ(next, n_prefix + n_ctx);
  KeepSet want = prune_threshold(s, tau, window, n_prefix, next);
  for (int il = 0; il < 2; ++il) {
    const std::vector<HeadRows> got = read_via_view(*dev, cache, il);
    for (int ih = 0; ih < 2; ++ih) {
      EXPECT_EQ(cache.positions(il, ih), want.rows[il][ih]);  // row index == position here
      EXPECT_TRUE(same_rows(got[ih], expected_rows(il, ih, 4, want.rows[il][ih])));
    }
  }
  EXPECT_EQ(ev.n_decided(), 2 * 2 * (n_ctx - window));
  EXPECT_EQ(ev.n_evicted(), want.n_total - want.n_kept);
}

TEST_P(KvzapEvictorTest, RowsBelowMinPosStayPendingAndTruncateForgetsRows) {
  KvCacheConfig cfg{1, 1, 4, {}};
  KvzapOptions o;
  o.threshold = 0.0f;  // every score below is evicted once decided
  o.window = 2;
  KvCache cache(*dev, cfg);
  KvzapEvictor ev(cfg, o);
  append_tokens(*dev, cache, 0, 10);
  std::vector<int32_t> pos(10);
  std::vector<float> sc(10, -1.0f);
  for (int i = 0; i < 10; ++i) pos[i] = i;
  ev.push(0, pos, sc.data());
  KeepSet k = ev.decide(cache, 10, 6);  // only rows 6, 7 may be decided
  ASSERT_FALSE(k.rows.empty());
  EXPECT_EQ(k.rows[0][0], (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 8, 9}));
  EXPECT_EQ(ev.n_pending(0, 0), 8);
  ev.truncate(5);
  EXPECT_EQ(ev.n_pending(0, 0), 5);
  KeepSet k2 = ev.decide(cache, 5, 0);  // rows 0..2 left the window of position 5
  ASSERT_FALSE(k2.rows.empty());
  EXPECT_EQ(k2.rows[0][0], (std::vector<int32_t>{3, 4, 5, 6, 7, 8, 9}));
}

INSTANTIATE_TEST_SUITE_P(Backends, KvzapEvictorTest, ::testing::Values("cpu", "vulkan"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace kvz::test
