// CPU matmul/embedding (runtime/cpu): the scalar references (dequantise a row, dot in double) and
// the fast fallback: for many x rows, dequantise row panels once per call and multiply with Eigen;
// for few (decode), dequantise each w row into an L1-resident buffer and dot it with every x row,
// which reads the weights once and skips GEMM packing. Threads over panels / row groups.
#include "runtime/cpu/matmul_cpu.h"

#include <Eigen/Core>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/cpu/dequant.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/simd_clones.h"

namespace kvz::cpu {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int64_t kPanelRows = 64;   // rows of w dequantised at a time: 64 x k f32 stays in L2
constexpr int64_t kMatvecMaxM = 8;   // fewer x rows than this take the fused row path
constexpr int64_t kMatvecRows = 16;  // w rows per work item of the fused path

const std::byte* row_ptr(const Tensor& t, int64_t r) {
  return t.host<std::byte>() + size_t(r) * row_bytes(t.dtype(), t.cols());
}

// Output columns [n0, n1) of y: panel by panel, dequantise w rows then y_panel = x . w_panel^T.
// panel: scratch of kPanelRows * k floats.
void matmul_columns(const MatmulArgs& a, int64_t n0, int64_t n1, float* panel) {
  const int64_t m = a.x.rows(), k = a.x.cols(), n = a.w.rows();
  Eigen::Map<const RowMat> x(a.x.host<float>(), m, k);
  const float* bias = has_bias(a) ? a.bias.host<float>() : nullptr;
  for (int64_t p0 = n0; p0 < n1; p0 += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, n1 - p0);
    dequantize_rows(a.w.dtype(), a.w.host<std::byte>(), k, p0, rows, panel);
    Eigen::Map<const RowMat> w(panel, rows, k);
    Eigen::Map<RowMat, 0, Eigen::OuterStride<>> y(a.y.host<float>() + p0, m, rows,
                                                  Eigen::OuterStride<>(n));
    y.noalias() = x * w.transpose();
    if (bias)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < rows; ++j) y(i, j) += bias[p0 + j];
  }
}

// Exact f16 -> f32; normal numbers inline, the rest through dequant.cpp's f16_to_f32.
inline float half_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  const uint32_t e = (h >> 10) & 0x1Fu;
  if (e == 0 || e == 0x1F) return f16_to_f32(h);
  return std::bit_cast<float>((uint32_t(h & 0x8000u) << 16) |
                              ((uint32_t(h & 0x7FFFu) + (112u << 10)) << 13));
}

// One row of w to f32: loops the compiler vectorises for the common block types (the quants are
// copied to locals first: byte pointers may alias y), dequantize_row for the others. Same float
// operations as dequant.cpp, so the values are bit-identical.
inline void dequant_row_fast(DType t, const uint8_t* w, float* y, int64_t k) {
  switch (t) {
    case DType::kF32:
      std::memcpy(y, w, size_t(k) * 4);
      return;
    case DType::kQ8_0:
      for (int64_t b = 0; b < k / 32; ++b, w += 34, y += 32) {
        const float d = half_to_float(w);
        int8_t q[32];
        std::memcpy(q, w + 2, 32);
        for (int j = 0; j < 32; ++j) y[j] = float(q[j]) * d;
      }
      return;
    case DType::kQ4_0:
      for (int64_t b = 0; b < k / 32; ++b, w += 18, y += 32) {
        const float d = half_to_float(w);
        uint8_t q[16];
        std::memcpy(q, w + 2, 16);
        for (int j = 0; j < 16; ++j) y[j] = d * float((q[j] & 0xF) - 8);
        for (int j = 0; j < 16; ++j) y[j + 16] = d * float((q[j] >> 4) - 8);
      }
      return;
    case DType::kQ4_1:
      for (int64_t b = 0; b < k / 32; ++b, w += 20, y += 32) {
        const float d = half_to_float(w), m = half_to_float(w + 2);
        uint8_t q[16];
        std::memcpy(q, w + 4, 16);
        for (int j = 0; j < 16; ++j) y[j] = d * float(q[j] & 0xF) + m;
        for (int j = 0; j < 16; ++j) y[j + 16] = d * float(q[j] >> 4) + m;
      }
      return;
    default:
      dequantize_row(t, w, y, k);
  }
}

// f32 dot with 16 independent partial sums (vectorisable without reassociating a single sum).
inline float dot(const float* x, const float* w, int64_t k) {
  float acc[16] = {};
  int64_t c = 0;
  for (; c + 16 <= k; c += 16)
    for (int e = 0; e < 16; ++e) acc[e] += x[c + e] * w[c + e];
  float s = 0;
  for (int e = 0; e < 16; ++e) s += acc[e];
  for (; c < k; ++c) s += x[c] * w[c];
  return s;
}

// Output columns [n0, n1) for few x rows: each w row is dequantised once into buf [k] f32.
KVZ_CPU_CLONES void matvec_columns(const MatmulArgs& a, int64_t n0, int64_t n1, float* buf) {
  const int64_t m = a.x.rows(), k = a.x.cols(), n = a.w.rows();
  const size_t rb = row_bytes(a.w.dtype(), k);
  const float* bias = has_bias(a) ? a.bias.host<float>() : nullptr;
  const float* x = a.x.host<float>();
  float* y = a.y.host<float>();
  for (int64_t j = n0; j < n1; ++j) {
    dequant_row_fast(a.w.dtype(), a.w.host<uint8_t>() + size_t(j) * rb, buf, k);
    for (int64_t i = 0; i < m; ++i) y[i * n + j] = dot(x + i * k, buf, k) + (bias ? bias[j] : 0.0f);
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
  const int64_t m = a.x.rows(), n = a.w.rows();
  // No second thread for tiny problems (waking one costs a few us).
  const int64_t work = m * a.x.cols() * n;
  if (work < (int64_t{1} << 16)) n_threads = 1;
  if (n_threads <= 0) n_threads = default_threads();
  const bool fused = m < kMatvecMaxM;
  // Per-worker scratch: one w row (fused) or one dequantised panel.
  const size_t scratch = size_t(a.x.cols()) * (fused ? 1 : kPanelRows);
  std::vector<std::vector<float>> bufs(static_cast<size_t>(n_threads), std::vector<float>(scratch));
  const int64_t step = fused ? kMatvecRows : kPanelRows;
  parallel_for((n + step - 1) / step, n_threads, [&](int worker, int64_t it) {
    const int64_t n0 = it * step, n1 = std::min(n, n0 + step);
    float* buf = bufs[size_t(worker)].data();
    if (fused)
      matvec_columns(a, n0, n1, buf);
    else
      matmul_columns(a, n0, n1, buf);
  });
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

void quantize_x8_ref(const Tensor& x, const Tensor& x8) {
  const int64_t k = x.numel();
  const float* xs = x.host<float>();
  uint32_t* q = x8.host<uint32_t>();  // [k / 4] packed int8, then (dx, sum) per group as bits
  for (int64_t g = 0; g < k / 32; ++g) {
    const float* v = xs + 32 * g;
    float amax = 0.0f, s = 0.0f;
    for (int i = 0; i < 32; i += 4) {  // as the shader: vec4 by vec4, s += dot(x4, vec4(1))
      amax = std::max(amax, std::max(std::max(std::abs(v[i]), std::abs(v[i + 1])),
                                     std::max(std::abs(v[i + 2]), std::abs(v[i + 3]))));
      s += ((v[i] + v[i + 1]) + v[i + 2]) + v[i + 3];
    }
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < 32; i += 4) {
      uint32_t word = 0;
      for (int j = 0; j < 4; ++j) {
        // The shader's x * inv + 1.5 * 2^23: the product rounded to an integer, ties to even.
        const float r = std::nearbyint(v[i + j] * inv);
        word |= uint32_t(uint8_t(int8_t(r))) << (8 * j);
      }
      q[8 * g + i / 4] = word;
    }
    q[k / 4 + 2 * g] = std::bit_cast<uint32_t>(amax / 127.0f);
    q[k / 4 + 2 * g + 1] = std::bit_cast<uint32_t>(s);
  }
}

}  // namespace kvz::cpu
