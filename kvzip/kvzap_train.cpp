// Ridge and MLP fitting of KVzap surrogates and their validation metrics (kvzip/). See
// kvzap_train.h; kvpress kvzap/train.py is the recipe followed.
#include "kvzip/kvzap_train.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kvzip/splitmix.h"
#include "runtime/error.h"

namespace kvz {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CMap = Eigen::Map<const RowMat>;

// Uniform in [lo, hi), in float (the initialisation the trained files were made with).
float uniform(SplitMix64& rng, float lo, float hi) {
  return lo + (hi - lo) * static_cast<float>(rng.uniform());
}

struct Adam {
  std::vector<float> m, v;
  explicit Adam(size_t n) : m(n, 0.0f), v(n, 0.0f) {}
  // torch.optim.AdamW (betas 0.9/0.999, eps 1e-8); `t` counts from 1.
  void step(std::vector<float>& p, const std::vector<float>& g, float lr, float wd, int64_t t) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    const float c1 = 1.0f - std::pow(b1, static_cast<float>(t)),
                c2 = 1.0f - std::pow(b2, static_cast<float>(t));
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] *= 1.0f - lr * wd;
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      p[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
    }
  }
};

void check_layer(const KvzapLayerData& d) {
  KVZ_CHECK(d.d_model > 0 && d.n_kv_heads > 0 && d.n() > 0 &&
                d.y.size() == static_cast<size_t>(d.n() * d.n_kv_heads),
            "KVzap data: {} x values, {} y values, D {} H {}", d.x.size(), d.y.size(), d.d_model,
            d.n_kv_heads);
}

}  // namespace

void KvzapLayerData::append(const float* xs, const float* ys, int64_t n_rows) {
  x.insert(x.end(), xs, xs + n_rows * d_model);
  y.insert(y.end(), ys, ys + n_rows * n_kv_heads);
}

void fit_linear(const KvzapLayerData& d, KvzapLayer& out, double alpha) {
  check_layer(d);
  const int64_t n = d.n(), D = d.d_model, H = d.n_kv_heads;
  KVZ_CHECK(out.w1.size() == static_cast<size_t>(H * D) && out.b1.size() == static_cast<size_t>(H),
            "linear layer shape");
  const Eigen::MatrixXd X = CMap(d.x.data(), n, D).cast<double>();
  const Eigen::MatrixXd Y = CMap(d.y.data(), n, H).cast<double>();
  const Eigen::RowVectorXd mx = X.colwise().mean(), my = Y.colwise().mean();
  const Eigen::MatrixXd Xc = X.rowwise() - mx, Yc = Y.rowwise() - my;
  Eigen::MatrixXd A = Xc.transpose() * Xc;
  A.diagonal().array() += alpha;
  const Eigen::MatrixXd W = A.ldlt().solve(Xc.transpose() * Yc);  // [D, H]
  const Eigen::RowVectorXd b = my - mx * W;
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t i = 0; i < D; ++i)
      out.w1[static_cast<size_t>(h * D + i)] = static_cast<float>(W(i, h));
    out.b1[static_cast<size_t>(h)] = static_cast<float>(b[h]);
  }
}

std::vector<double> fit_mlp(const KvzapLayerData& d, int d_hidden, KvzapLayer& out,
                            const MlpTrainOptions& o) {
  check_layer(d);
  const int64_t n = d.n(), D = d.d_model, H = d.n_kv_heads, F = d_hidden;
  KVZ_CHECK(
      out.w1.size() == static_cast<size_t>(F * D) && out.w2.size() == static_cast<size_t>(H * F),
      "MLP layer shape");
  KVZ_CHECK(o.epochs > 0 && o.batch > 0, "epochs {} batch {}", o.epochs, o.batch);
  SplitMix64 rng(o.seed);
  const float a1 = 1.0f / std::sqrt(static_cast<float>(D)),
              a2 = 1.0f / std::sqrt(static_cast<float>(F));
  for (float& w : out.w1) w = uniform(rng, -a1, a1);
  for (float& w : out.b1) w = uniform(rng, -a1, a1);
  for (float& w : out.w2) w = uniform(rng, -a2, a2);
  const Eigen::RowVectorXf ymean = CMap(d.y.data(), n, H).colwise().mean();
  for (int64_t h = 0; h < H; ++h) out.b2[static_cast<size_t>(h)] = ymean[h];

  std::vector<std::vector<float>*> params = {&out.w1, &out.b1, &out.w2, &out.b2};
  std::vector<Adam> adam;
  for (auto* p : params) adam.emplace_back(p->size());
  std::vector<std::vector<float>> grads(4);
  for (size_t i = 0; i < 4; ++i) grads[i].resize(params[i]->size());

  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> losses;
  RowMat Xb, Yb, Z1, A, Yh, dY, dZ;
  int64_t t = 0;
  const float kPi = 3.14159265358979f;
  for (int e = 0; e < o.epochs; ++e) {
    const float lr =
        o.lr * 0.5f * (1.0f + std::cos(kPi * static_cast<float>(e) / static_cast<float>(o.epochs)));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.next() % i]);
    double sum = 0;
    for (int64_t s = 0; s < n; s += o.batch) {
      const int64_t B = std::min<int64_t>(o.batch, n - s);
      Xb.resize(B, D);
      Yb.resize(B, H);
      for (int64_t r = 0; r < B; ++r) {
        const int64_t src = order[static_cast<size_t>(s + r)];
        Xb.row(r) = CMap(d.x.data() + src * D, 1, D);
        Yb.row(r) = CMap(d.y.data() + src * H, 1, H);
      }
      Eigen::Map<RowMat> W1(out.w1.data(), F, D), W2(out.w2.data(), H, F);
      Eigen::Map<Eigen::RowVectorXf> b1(out.b1.data(), F), b2(out.b2.data(), H);
      Z1.noalias() = Xb * W1.transpose();
      Z1.rowwise() += b1;
      A = Z1.unaryExpr([](float z) { return 0.5f * z * (1.0f + std::erf(z * 0.70710678f)); });
      Yh.noalias() = A * W2.transpose();
      Yh.rowwise() += b2;
      dY = Yh - Yb;
      sum += static_cast<double>(dY.squaredNorm());
      dY *= 2.0f / static_cast<float>(B * H);  // d mean((yh - y)^2)
      Eigen::Map<RowMat> gW1(grads[0].data(), F, D), gW2(grads[2].data(), H, F);
      Eigen::Map<Eigen::RowVectorXf> gb1(grads[1].data(), F), gb2(grads[3].data(), H);
      gW2.noalias() = dY.transpose() * A;
      gb2 = dY.colwise().sum();
      dZ.noalias() = dY * W2;
      dZ.array() *= Z1.unaryExpr([](float z) {
                        const float cdf = 0.5f * (1.0f + std::erf(z * 0.70710678f));
                        return cdf + z * 0.39894228f * std::exp(-0.5f * z * z);
                      }).array();
      gW1.noalias() = dZ.transpose() * Xb;
      gb1 = dZ.colwise().sum();
      double norm2 = 0;
      for (auto& g : grads)
        for (float v : g) norm2 += static_cast<double>(v) * v;
      const double norm = std::sqrt(norm2);
      if (norm > o.clip) {
        const auto f = static_cast<float>(o.clip / (norm + 1e-6));
        for (auto& g : grads)
          for (float& v : g) v *= f;
      }
      ++t;
      for (size_t i = 0; i < 4; ++i) adam[i].step(*params[i], grads[i], lr, o.weight_decay, t);
    }
    losses.push_back(sum / static_cast<double>(n * H));
  }
  return losses;
}

KvzapFitStats evaluate_fit(const KvzapModel& m, int il, const KvzapLayerData& d) {
  check_layer(d);
  const int64_t n = d.n(), H = d.n_kv_heads;
  std::vector<float> pred(static_cast<size_t>(n * H));
  m.predict(il, d.x.data(), n, pred.data());
  KvzapFitStats st;
  double sse_all = 0;
  for (int64_t h = 0; h < H; ++h) {
    double sp = 0, sy = 0, spp = 0, syy = 0, spy = 0, sse = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double p = pred[static_cast<size_t>(i * H + h)],
                   y = d.y[static_cast<size_t>(i * H + h)];
      sp += p, sy += y, spp += p * p, syy += y * y, spy += p * y, sse += (p - y) * (p - y);
    }
    const double nn = static_cast<double>(n);
    const double cov = spy / nn - sp * sy / (nn * nn), vp = spp / nn - sp * sp / (nn * nn),
                 vy = syy / nn - sy * sy / (nn * nn);
    st.pearson_r2.push_back(vp > 0 && vy > 0 ? cov * cov / (vp * vy) : 0.0);
    st.r2.push_back(vy > 0 ? 1.0 - sse / (nn * vy) : 0.0);
    sse_all += sse;
  }
  st.mse = sse_all / static_cast<double>(n * H);
  return st;
}

}  // namespace kvz
