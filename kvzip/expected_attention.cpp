// Expected Attention (kvzip/). See expected_attention.h; kvpress expected_attention_press.py.
#include "kvzip/expected_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/cpu/half.h"
#include "runtime/cpu/parallel.h"
#include "runtime/error.h"

namespace kvz {
namespace {

// The two dimensions rotated together by pair i (runtime/ops/rope.h).
std::pair<int, int> rope_pair(const RopeSpec& r, int i) {
  const int half = r.rot_dims() / 2;
  return r.style == RopeStyle::kNeox ? std::pair{i, i + half} : std::pair{2 * i, 2 * i + 1};
}

// out = A x for a row-major [d, d] matrix.
void mat_vec(const std::vector<double>& a, const double* x, double* out, int d) {
  for (int r = 0; r < d; ++r) {
    double acc = 0;
    for (int c = 0; c < d; ++c) acc += a[static_cast<size_t>(r * d + c)] * x[c];
    out[r] = acc;
  }
}

// R S R^T for row-major [d, d] matrices.
std::vector<double> sandwich(const std::vector<double>& r, const double* s, int d) {
  const auto n = static_cast<size_t>(d);
  std::vector<double> rs(n * n, 0.0), out(n * n, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t k = 0; k < n; ++k)
      for (size_t j = 0; j < n; ++j) rs[i * n + j] += r[i * n + k] * s[k * n + j];
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j)
      for (size_t k = 0; k < n; ++k) out[i * n + j] += rs[i * n + k] * r[j * n + k];
  return out;
}

}  // namespace

std::vector<double> mean_rotation(const RopeSpec& rope, int head_dim, int64_t p0, int n) {
  KVZ_CHECK(rope.rot_dims() <= head_dim && n > 0, "rot_dims {} head_dim {} n {}", rope.rot_dims(),
            head_dim, n);
  const auto d = static_cast<size_t>(head_dim);
  std::vector<double> m(d * d, 0.0);
  for (int i = rope.rot_dims(); i < head_dim; ++i) m[static_cast<size_t>(i) * d + i] = 1.0;
  for (int i = 0; i < rope.rot_dims() / 2; ++i) {
    double c = 0, s = 0;
    for (int64_t p = p0; p < p0 + n; ++p) {
      const float theta = static_cast<float>(p) * rope.inv_freq[static_cast<size_t>(i)];
      c += std::cos(double(theta));
      s += std::sin(double(theta));
    }
    c *= rope.attn_factor / n;
    s *= rope.attn_factor / n;
    const auto [a, b] = rope_pair(rope, i);
    m[a * d + a] = c;  // x_a' = x_a cos - x_b sin
    m[a * d + b] = -s;
    m[b * d + a] = s;  // x_b' = x_a sin + x_b cos
    m[b * d + b] = c;
  }
  return m;
}

QueryStats::QueryStats(int n_layers, int n_heads, int head_dim, std::vector<RopeSpec> rope,
                       int n_sink)
    : n_heads_(n_heads), head_dim_(head_dim), n_sink_(n_sink), rope_(std::move(rope)) {
  KVZ_CHECK(n_layers > 0 && n_heads > 0 && head_dim > 0 && n_sink >= 0, "query stats {}x{}x{}",
            n_layers, n_heads, head_dim);
  KVZ_CHECK(static_cast<int>(rope_.size()) == n_layers, "{} rope specs for {} layers", rope_.size(),
            n_layers);
  for (const RopeSpec& r : rope_)
    KVZ_CHECK(r.rot_dims() <= head_dim && r.attn_factor != 0.0f, "rot_dims {} > head_dim {}",
              r.rot_dims(), head_dim);
  const auto hd = static_cast<size_t>(head_dim), h = static_cast<size_t>(n_heads);
  sum_.assign(static_cast<size_t>(n_layers), std::vector<double>(h * hd, 0.0));
  sum_sq_.assign(static_cast<size_t>(n_layers), std::vector<double>(h * hd * hd, 0.0));
  count_.assign(static_cast<size_t>(n_layers), 0);
}

void QueryStats::add(int il, std::span<const float> q, int32_t pos0) {
  KVZ_CHECK(il >= 0 && il < n_layers(), "layer {}", il);
  const auto hd = static_cast<size_t>(head_dim_), row = static_cast<size_t>(n_heads_) * hd;
  KVZ_CHECK(q.size() % row == 0, "q of {} floats is not [n, {}, {}]", q.size(), n_heads_,
            head_dim_);
  const RopeSpec& r = rope(il);
  std::vector<double>& sum = sum_[static_cast<size_t>(il)];
  std::vector<double>& sq = sum_sq_[static_cast<size_t>(il)];
  const size_t n_tokens = q.size() / row;
  // Heads in parallel: each owns its slices of sum and sum_sq.
  cpu::parallel_for(n_heads_, 0, [&](int, int64_t head) {
    const auto h = static_cast<size_t>(head);
    std::vector<double> x(hd);
    double* su = sum.data() + h * hd;
    double* sqh = sq.data() + h * hd * hd;
    for (size_t t = 0; t < n_tokens; ++t) {
      const int32_t pos = pos0 + static_cast<int32_t>(t);
      if (pos < n_sink_) continue;
      const float* src = q.data() + t * row + h * hd;
      for (size_t d = 0; d < hd; ++d) x[d] = src[d];
      // Undo rope(): x_pre = R(pos)^T x_post / attn_factor on every rotated pair.
      for (int i = 0; i < r.rot_dims() / 2; ++i) {
        const float theta = static_cast<float>(pos) * r.inv_freq[static_cast<size_t>(i)];
        const double c = std::cos(double(theta)) / r.attn_factor;
        const double s = std::sin(double(theta)) / r.attn_factor;
        const auto [a, b] = rope_pair(r, i);
        const double x0 = x[a], x1 = x[b];
        x[a] = x0 * c + x1 * s;
        x[b] = -x0 * s + x1 * c;
      }
      for (size_t i = 0; i < hd; ++i) {
        su[i] += x[i];
        for (size_t j = i; j < hd; ++j) sqh[i * hd + j] += x[i] * x[j];  // upper triangle
      }
    }
  });
  for (size_t t = 0; t < n_tokens; ++t)
    if (pos0 + static_cast<int32_t>(t) >= n_sink_) ++count_[static_cast<size_t>(il)];
}

std::vector<double> QueryStats::mean(int il) const {
  const int64_t n = count(il);
  KVZ_CHECK(n > 0, "layer {} saw no queries", il);
  std::vector<double> m = sum_[static_cast<size_t>(il)];
  for (double& v : m) v /= static_cast<double>(n);
  return m;
}

std::vector<double> QueryStats::covariance(int il) const {
  const auto n = static_cast<double>(count(il));
  const std::vector<double> mu = mean(il);
  const auto hd = static_cast<size_t>(head_dim_);
  std::vector<double> cov = sum_sq_[static_cast<size_t>(il)];
  for (size_t h = 0; h < static_cast<size_t>(n_heads_); ++h) {
    double* c = cov.data() + h * hd * hd;
    const double* m = mu.data() + h * hd;
    // E[x x^T] - mu mu^T, mirrored from the upper triangle.
    for (size_t i = 0; i < hd; ++i)
      for (size_t j = i; j < hd; ++j) {
        const double v = c[i * hd + j] / n - m[i] * m[j];
        c[i * hd + j] = v;
        c[j * hd + i] = v;
      }
  }
  return cov;
}

Scores expected_attention_scores(const QueryStats& st, const KvCache& cache, int64_t n_prefix,
                                 int64_t n_ctx, const ExpectedAttentionOptions& o) {
  const KvCacheConfig& c = cache.config();
  KVZ_CHECK(c.n_layers == st.n_layers() && c.head_dim == st.head_dim() &&
                st.n_heads() % c.n_kv_heads == 0,
            "query stats {}x{}x{} do not fit the cache {}x{}x{}", st.n_layers(), st.n_heads(),
            st.head_dim(), c.n_layers, c.n_kv_heads, c.head_dim);
  const int64_t N = n_prefix + n_ctx, hd = c.head_dim;
  if (N <= o.n_sink)
    throw InputError(
        fmt::format("expected attention needs more than {} prefilled tokens, got {}", o.n_sink, N));
  const int G = st.n_heads() / c.n_kv_heads;
  const auto d = static_cast<size_t>(hd);
  Scores s(c.n_layers, c.n_kv_heads, n_ctx);
  // The cache is read on this thread (device transfers); the layers then run in parallel, each
  // writing only its own rows of s.
  std::vector<std::vector<HeadRows>> all_rows(static_cast<size_t>(c.n_layers));
  for (int il = 0; il < c.n_layers; ++il) {
    if (st.count(il) == 0) throw InputError(fmt::format("layer {} saw no prefill queries", il));
    all_rows[static_cast<size_t>(il)] = cache.read_layer(il);
    for (int kh = 0; kh < c.n_kv_heads; ++kh) {
      const HeadRows& r = all_rows[static_cast<size_t>(il)][static_cast<size_t>(kh)];
      KVZ_CHECK(static_cast<int64_t>(r.pos.size()) >= N, "layer {} head {} holds {} rows, need {}",
                il, kh, r.pos.size(), N);
    }
  }
  cpu::parallel_for(c.n_layers, 0, [&](int, int64_t layer_index) {
    const auto il = static_cast<int>(layer_index);
    std::vector<double> z(static_cast<size_t>(N)), layer(static_cast<size_t>(c.n_kv_heads * N));
    std::vector<double> k(d), sk(d), mu_h(d);
    const std::vector<double> rot = mean_rotation(st.rope(il), c.head_dim, N, o.n_future);
    const std::vector<double> mu = st.mean(il), cov = st.covariance(il);
    const std::vector<HeadRows>& rows = all_rows[static_cast<size_t>(il)];
    for (int kh = 0; kh < c.n_kv_heads; ++kh) {
      const HeadRows& r = rows[static_cast<size_t>(kh)];
      for (int g = 0; g < G; ++g) {
        const auto ih = static_cast<size_t>(kh * G + g);
        mat_vec(rot, mu.data() + ih * d, mu_h.data(), c.head_dim);
        const std::vector<double> cov_h = o.use_covariance
                                              ? sandwich(rot, cov.data() + ih * d * d, c.head_dim)
                                              : std::vector<double>();
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t row = o.n_sink; row < N; ++row) {
          for (size_t i = 0; i < d; ++i)
            k[i] = cpu::f16_to_f32(r.k[static_cast<size_t>(row) * d + i]);
          double logit = 0;
          for (size_t i = 0; i < d; ++i) logit += mu_h[i] * k[i];
          logit /= std::sqrt(static_cast<double>(hd));
          if (o.use_covariance) {
            mat_vec(cov_h, k.data(), sk.data(), c.head_dim);
            double quad = 0;
            for (size_t i = 0; i < d; ++i) quad += k[i] * sk[i];
            logit += quad / static_cast<double>(hd) / 2;
          }
          z[static_cast<size_t>(row)] = logit;
          mx = std::max(mx, logit);
        }
        double sum = 0;
        for (int64_t row = o.n_sink; row < N; ++row) sum += std::exp(z[row] - mx);
        for (int64_t row = o.n_sink; row < N; ++row)
          layer[static_cast<size_t>(kh * N + row)] += std::exp(z[row] - mx) / sum / G;
      }
      if (o.use_vnorm)
        for (int64_t row = o.n_sink; row < N; ++row) {
          double v2 = 0;
          for (size_t i = 0; i < d; ++i) {
            const double v = cpu::f16_to_f32(r.v[static_cast<size_t>(row) * d + i]);
            v2 += v * v;
          }
          double& x = layer[static_cast<size_t>(kh * N + row)];
          x = (x + o.epsilon) * std::sqrt(v2);
        }
    }
    double layer_max = -std::numeric_limits<double>::infinity();
    for (int kh = 0; kh < c.n_kv_heads; ++kh)
      for (int64_t row = o.n_sink; row < N; ++row)
        layer_max = std::max(layer_max, layer[static_cast<size_t>(kh * N + row)]);
    for (int kh = 0; kh < c.n_kv_heads; ++kh)
      for (int64_t j = 0; j < n_ctx; ++j) {
        const int64_t row = n_prefix + j;
        s.at(il, kh, j) = static_cast<float>(
            row < o.n_sink ? layer_max : layer[static_cast<size_t>(kh * N + row)]);
      }
  });
  return s;
}

}  // namespace kvz
