// CPU matmul/embedding (runtime/cpu): the scalar references (dequantise a row, dot in double) and
// the fast path: x quantised to int8 once per call, weight rows unpacked block by block into
// per-thread buffers and multiplied in integer SIMD (runtime/cpu/qdot.h); f16/bf16/f32 weights
// converted to f32 rows and multiplied in float SIMD. Work items are blocks of weight rows
// (decode) or weight rows x x rows (prefill), pulled by the persistent pool's threads.
#include "runtime/cpu/matmul_cpu.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/cpu/dequant.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/qdot.h"
#include "runtime/device.h"

namespace kvz::cpu {
namespace {

// A work item is a block of weight rows against every x row (in 4-row register tiles), so each
// weight row is unpacked once per call and its block stays in L2 while x streams past it.
constexpr int64_t kQuantWRows = 16;  // weight rows unpacked per item: 16 x k codes
constexpr int64_t kFloatWRows = 8;   // f32 weight rows converted per item
constexpr int64_t kXRows = 64;       // x rows quantised per item of that pass

const std::byte* row_ptr(const Tensor& t, int64_t r) {
  return t.host<std::byte>() + size_t(r) * row_bytes(t.dtype(), t.cols());
}

// A thread's scratch, grown on demand and kept: no allocation per call once warm.
template <class T>
T* grown(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

void matmul_quant(const MatmulArgs& a, int n_threads) {
  const int64_t m = a.x.rows(), k = a.x.cols(), n = a.w.rows();
  const int64_t kp = qdot_padded(k), gp = kp / 16;
  thread_local std::vector<int8_t> xq_codes;
  thread_local std::vector<float> xq_scales;
  float* xf = grown(xq_scales, size_t(2 * m * gp));
  const DType t = a.w.dtype();
  const int64_t xb = qdot_x_block(t, m);
  const bool kq = xb == 256;  // the K-quants' integer layout
  const XQuantRows xq{grown(xq_codes, size_t(m * kp)), xf, xf + m * gp, k, kp, xb};
  const float* x = a.x.host<float>();
  parallel_for(div_up(m, kXRows), m >= 2 * kXRows ? n_threads : 1, [&](int, int64_t b) {
    quantize_x_rows(x, b * kXRows, std::min(m, (b + 1) * kXRows), xq);
  });
  const uint8_t* w = a.w.host<uint8_t>();
  const float* bias = has_bias(a) ? a.bias.host<float>() : nullptr;
  float* y = a.y.host<float>();
  parallel_for(div_up(n, kQuantWRows), n_threads, [&](int, int64_t wb) {
    const int64_t r0 = wb * kQuantWRows, r1 = std::min(n, r0 + kQuantWRows);
    thread_local std::vector<uint8_t> codes;
    thread_local std::vector<float> scales;
    thread_local std::vector<int16_t> kscales;
    float* wf = grown(scales, size_t(2 * kQuantWRows * gp + kQuantWRows * kp / 256));
    const WUnpackedRows wu{grown(codes, size_t(kQuantWRows * kp)),
                           wf,
                           wf + kQuantWRows * gp,
                           k,
                           kp,
                           t == DType::kQ8_0,
                           kq ? grown(kscales, size_t(kQuantWRows * kp / 2)) : nullptr,
                           kq ? wf + 2 * kQuantWRows * gp : nullptr};
    if (m >= kQdotTileMinM) {  // panel: unpack the block of rows once, dot every x row
      unpack_w_rows(t, w, r0, r1, wu);
      qdot_tile(wu, r1 - r0, xq, 0, m, bias ? bias + r0 : nullptr, y + r0, n);
      return;
    }
    const size_t rb = row_bytes(t, k);
    for (int64_t r = r0; r < r1; ++r) {  // few x rows: one weight row at a time, read from L1
      // Every line of the next row is requested first: decode reads each weight once, and the
      // unpacking otherwise waits on memory line by line.
      if (r + 1 < n)
        for (size_t off = 0; off < rb; off += 64) __builtin_prefetch(w + size_t(r + 1) * rb + off);
      if (qdot_row_direct(t, w + size_t(r) * rb, xq, m, bias ? bias + r : nullptr, y + r, n))
        continue;
      unpack_w_rows(t, w, r, r + 1, wu);
      qdot_tile(wu, 1, xq, 0, m, bias ? bias + r : nullptr, y + r, n);
    }
  });
}

void matmul_float(const MatmulArgs& a, int n_threads) {
  const int64_t m = a.x.rows(), k = a.x.cols(), n = a.w.rows();
  const DType t = a.w.dtype();
  const uint8_t* w = a.w.host<uint8_t>();
  const float* x = a.x.host<float>();
  const float* bias = has_bias(a) ? a.bias.host<float>() : nullptr;
  float* y = a.y.host<float>();
  parallel_for(div_up(n, kFloatWRows), n_threads, [&](int, int64_t wb) {
    const int64_t r0 = wb * kFloatWRows, r1 = std::min(n, r0 + kFloatWRows);
    const float* wr = reinterpret_cast<const float*>(w) + r0 * k;
    if (t != DType::kF32) {
      thread_local std::vector<float> rows;
      float* buf = grown(rows, size_t(kFloatWRows * k));
      if (is_quantized(t))
        dequantize_rows(t, w, k, r0, r1 - r0, buf);
      else
        float_w_rows(t, w, k, r0, r1, buf);
      wr = buf;
    }
    fdot_tile(wr, r1 - r0, x, m, k, bias ? bias + r0 : nullptr, y + r0, n);
  });
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
  const DType t = a.w.dtype();
  if (qdot_supports(t) && cpu_int8_activations())
    matmul_quant(a, n_threads);
  else if (qdot_supports(t) || t == DType::kF32 || t == DType::kF16 || t == DType::kBF16)
    matmul_float(a, n_threads);
  else
    matmul_ref(a);
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
