// CPU matmul/embedding (runtime/cpu): the scalar references (dequantise a row, dot in double) and
// the fast fallback (dequantise row panels once per call, Eigen GEMM, threads over panels).
#include "runtime/cpu/matmul_cpu.h"

#include <Eigen/Core>
#include <algorithm>
#include <thread>
#include <vector>

#include "runtime/cpu/dequant.h"

namespace kvz::cpu {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int64_t kPanelRows = 64;  // rows of w dequantised at a time: 64 x k f32 stays in L2

const std::byte* row_ptr(const Tensor& t, int64_t r) {
  return t.host<std::byte>() + size_t(r) * row_bytes(t.dtype(), t.cols());
}

// Output columns [n0, n1) of y: panel by panel, dequantise w rows then y_panel = x . w_panel^T.
void matmul_columns(const MatmulArgs& a, int64_t n0, int64_t n1) {
  const int64_t m = a.x.rows(), k = a.x.cols(), n = a.w.rows();
  Eigen::Map<const RowMat> x(a.x.host<float>(), m, k);
  const float* bias = has_bias(a) ? a.bias.host<float>() : nullptr;
  std::vector<float> panel(size_t(std::min(kPanelRows, n1 - n0) * k));
  for (int64_t p0 = n0; p0 < n1; p0 += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, n1 - p0);
    dequantize_rows(a.w.dtype(), a.w.host<std::byte>(), k, p0, rows, panel.data());
    Eigen::Map<const RowMat> w(panel.data(), rows, k);
    Eigen::Map<RowMat, 0, Eigen::OuterStride<>> y(a.y.host<float>() + p0, m, rows,
                                                  Eigen::OuterStride<>(n));
    y.noalias() = x * w.transpose();
    if (bias)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < rows; ++j) y(i, j) += bias[p0 + j];
  }
}

}  // namespace

void matmul_ref(const MatmulArgs& a) {
  const int64_t m = a.x.rows(), k = a.x.cols(), n = a.w.rows();
  std::vector<float> wrow(static_cast<size_t>(k));
  for (int64_t j = 0; j < n; ++j) {
    dequantize_row(a.w.dtype(), row_ptr(a.w, j), wrow.data(), k);
    for (int64_t i = 0; i < m; ++i) {
      const float* x = a.x.host<float>() + i * k;
      double s = has_bias(a) ? double(a.bias.host<float>()[j]) : 0.0;
      for (int64_t c = 0; c < k; ++c) s += double(x[c]) * double(wrow[size_t(c)]);
      a.y.host<float>()[i * n + j] = float(s);
    }
  }
}

void matmul_fast(const MatmulArgs& a, int n_threads) {
  const int64_t n = a.w.rows();
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  // Whole panels per thread; no thread for tiny problems (spawn cost ~20 us).
  const int64_t panels = (n + kPanelRows - 1) / kPanelRows;
  const int64_t work = a.x.rows() * a.x.cols() * n;
  int64_t t = std::min<int64_t>({n_threads, panels, std::max<int64_t>(1, work >> 18)});
  if (t <= 1) return matmul_columns(a, 0, n);
  std::vector<std::thread> pool;
  for (int64_t i = 0; i < t; ++i) {
    int64_t n0 = panels * i / t * kPanelRows, n1 = std::min(n, panels * (i + 1) / t * kPanelRows);
    pool.emplace_back([&a, n0, n1] { matmul_columns(a, n0, n1); });
  }
  for (auto& th : pool) th.join();
}

void embedding_ref(const EmbeddingArgs& a) {
  const int64_t n = a.ids.numel(), d = a.table.cols(), n_vocab = a.table.rows();
  const int32_t* ids = a.ids.host<int32_t>();
  for (int64_t t = 0; t < n; ++t) {
    KVZ_CHECK(ids[t] >= 0 && ids[t] < n_vocab, "embedding: id {} outside [0, {})", ids[t], n_vocab);
    float* y = a.y.host<float>() + t * d;
    dequantize_row(a.table.dtype(), row_ptr(a.table, ids[t]), y, d);
    if (a.scale != 1.0f)
      for (int64_t c = 0; c < d; ++c) y[c] *= a.scale;
  }
}

}  // namespace kvz::cpu
