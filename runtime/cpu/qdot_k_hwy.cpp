// The K-quant dot tiles of the CPU matmul (runtime/cpu; layout in qdot.h): x rounded per 256
// values, weights with their integer sub-block scales. Per 64 values and row pair the integer
// work is one u8 x i8 pair product (vpmaddubsw) and one i16 x i16 multiply-add of the scales into
// int32 (vpdpwssd with VNNI, vpmaddwd + vpaddd below); the float conversion and scaling happen
// once per 256-value block. A tile is R x rows by C weight rows held in registers, so each loaded
// weight vector serves R rows and each x vector C rows. Highway compiles it per x86 level like
// qdot_hwy.cpp; other targets take a portable loop for the integer step.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL  // also build the Ice Lake+ level (VNNI); Highway leaves it out unasked
#endif

#include <cstdint>

#include "runtime/cpu/qdot.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/cpu/qdot_k_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace kvz::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
template <int R, int C>
void DotK(const WUnpackedRows& wu, int64_t j, const XQuantRows& xq, int64_t i, float* out) {
  const int64_t kp = wu.stride, gp = kp / 16;
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const uint8_t* u = wu.u + (j + c) * kp;
      const int16_t* sc = wu.sc + (j + c) * (kp / 2);
      const int8_t* q = xq.q + (i + r) * kp;
      float acc = 0;
      for (int64_t b = 0; b < kp / 256; ++b) {
        int32_t s = 0;
        for (int64_t e = 256 * b; e < 256 * (b + 1); ++e)
          s += int32_t(u[e]) * int32_t(q[e]) * int32_t(sc[e / 2]);
        acc += float(s) * (wu.d256[(j + c) * (kp / 256) + b] * xq.d16[(i + r) * gp + 16 * b]);
        for (int64_t g = 16 * b; g < 16 * (b + 1); ++g)
          acc += wu.b16[(j + c) * gp + g] * xq.s16[(i + r) * gp + g];
      }
      out[r * C + c] = acc;
    }
}
#else
// At most 16 float lanes: one lane per 16-value group of a block in the offset step.
using DF = hn::CappedTag<float, 16>;
using DI = hn::Repartition<int32_t, DF>;
using DI16 = hn::Repartition<int16_t, DF>;
using DU8 = hn::Repartition<uint8_t, DF>;
using DI8 = hn::Repartition<int8_t, DF>;

// acc[l] += sum_{p in {2l, 2l+1}} sc[p] * (u[2p] q[2p] + u[2p+1] q[2p+1]) for int32 lane l; u <= 63
// and |q| <= 127, so the 16-bit pair sums cannot saturate.
HWY_INLINE hn::Vec<DI> DotScaled(hn::Vec<DU8> u, hn::Vec<DI8> q, hn::Vec<DI16> sc,
                                 hn::Vec<DI> acc) {
#if HWY_TARGET == HWY_AVX3_DL
  const __m512i p = _mm512_maddubs_epi16(u.raw, q.raw);
  __m512i a = acc.raw;
  // The level's pragma names avxvnni but not avx512vnni (see qdot_hwy.cpp's Dot4).
  asm("vpdpwssd %[s], %[p], %[a]" : [a] "+v"(a) : [p] "v"(p), [s] "v"(sc.raw));
  return hn::Vec<DI>{a};
#elif HWY_TARGET == HWY_AVX3
  const __m512i p = _mm512_maddubs_epi16(u.raw, q.raw);
  return hn::Vec<DI>{_mm512_add_epi32(acc.raw, _mm512_madd_epi16(p, sc.raw))};
#elif HWY_TARGET == HWY_AVX2
  const __m256i p = _mm256_maddubs_epi16(u.raw, q.raw);
  return hn::Vec<DI>{_mm256_add_epi32(acc.raw, _mm256_madd_epi16(p, sc.raw))};
#elif HWY_TARGET == HWY_SSE4 || HWY_TARGET == HWY_SSSE3
  const __m128i p = _mm_maddubs_epi16(u.raw, q.raw);
  return hn::Vec<DI>{_mm_add_epi32(acc.raw, _mm_madd_epi16(p, sc.raw))};
#else
  const DU8 du;
  const DI8 dq;
  const DI16 dw;
  const DI di;
  HWY_ALIGN uint8_t ub[hn::MaxLanes(du)];
  HWY_ALIGN int8_t qb[hn::MaxLanes(dq)];
  HWY_ALIGN int16_t sb[hn::MaxLanes(dw)];
  HWY_ALIGN int32_t ob[hn::MaxLanes(di)];
  hn::Store(u, du, ub);
  hn::Store(q, dq, qb);
  hn::Store(sc, dw, sb);
  hn::Store(acc, di, ob);
  for (size_t l = 0; l < hn::Lanes(di); ++l)
    for (size_t e = 4 * l; e < 4 * l + 4; ++e)
      ob[l] += int32_t(ub[e]) * int32_t(qb[e]) * int32_t(sb[e / 2]);
  return hn::Load(di, ob);
#endif
}

// out[r * C + c] = w row j + c . x row i + r.
template <int R, int C>
HWY_INLINE void DotK(const WUnpackedRows& wu, int64_t j, const XQuantRows& xq, int64_t i,
                     float* out) {
  const DF df;
  const DI di;
  const DI16 dw;
  const DU8 du;
  const DI8 dq;
  const size_t nb = hn::Lanes(du), nf = hn::Lanes(df);
  const int64_t kp = wu.stride, gp = kp / 16, bp = kp / 256;
  const uint8_t* u[C];
  const int16_t* sc[C];
  const float *wd[C], *wb[C];
  for (int c = 0; c < C; ++c) {
    u[c] = wu.u + (j + c) * kp;
    sc[c] = wu.sc + (j + c) * (kp / 2);
    wd[c] = wu.d256 + (j + c) * bp;
    wb[c] = wu.b16 + (j + c) * gp;
  }
  const int8_t* q[R];
  const float *xd[R], *xs[R];
  for (int r = 0; r < R; ++r) {
    q[r] = xq.q + (i + r) * kp;
    xd[r] = xq.d16 + (i + r) * gp;
    xs[r] = xq.s16 + (i + r) * gp;
  }
  hn::Vec<DF> acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::Zero(df);
  for (int64_t b = 0; b < bp; ++b) {
    hn::Vec<DI> ia[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) ia[r][c] = hn::Zero(di);
    for (int64_t o = 256 * b; o < 256 * (b + 1); o += int64_t(nb)) {
      hn::Vec<DU8> uv[C];
      hn::Vec<DI16> sv[C];
      for (int c = 0; c < C; ++c) {
        uv[c] = hn::LoadU(du, u[c] + o);
        sv[c] = hn::LoadU(dw, sc[c] + o / 2);
      }
      for (int r = 0; r < R; ++r) {
        const auto qv = hn::LoadU(dq, q[r] + o);
        for (int c = 0; c < C; ++c) ia[r][c] = DotScaled(uv[c], qv, sv[c], ia[r][c]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c)
        acc[r][c] = hn::MulAdd(hn::ConvertTo(df, ia[r][c]), hn::Set(df, wd[c][b] * xd[r][16 * b]),
                               acc[r][c]);
    for (int64_t g = 16 * b; g < 16 * (b + 1); g += int64_t(nf))
      for (int r = 0; r < R; ++r) {
        const auto xv = hn::LoadU(df, xs[r] + g);
        for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(hn::LoadU(df, wb[c] + g), xv, acc[r][c]);
      }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r * C + c] = hn::GetLane(hn::SumOfLanes(df, acc[r][c]));
}
#endif

// x rows i0 + [0, R) against weight rows [j, j + C) (+ bias), into y rows [0, R).
template <int R, int C>
HWY_INLINE void TileK(const WUnpackedRows& wu, int64_t j, const XQuantRows& xq, int64_t i0,
                      const float* bias, float* y, int64_t ldy) {
  float out[R * C];
  DotK<R, C>(wu, j, xq, i0, out);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[r * ldy + j + c] = out[r * C + c] + (bias ? bias[j + c] : 0.0f);
}

// x rows i0 + [0, R) against weight rows [0, n), in tiles of kC weight rows.
template <int R>
void RowsK(const WUnpackedRows& wu, int64_t n, const XQuantRows& xq, int64_t i0, const float* bias,
           float* y, int64_t ldy) {
  constexpr int kC = 3;  // 3 x 4 pairs of int32 accumulators + 6 weight vectors in registers
  int64_t j = 0;
  for (; j + kC <= n; j += kC) TileK<R, kC>(wu, j, xq, i0, bias, y, ldy);
  if (n - j >= 2) TileK<R, 2>(wu, j, xq, i0, bias, y, ldy), j += 2;
  if (n - j >= 1) TileK<R, 1>(wu, j, xq, i0, bias, y, ldy);
}

void QdotTileK(const WUnpackedRows& wu, int64_t n, const XQuantRows& xq, int64_t i0, int64_t m,
               const float* bias, float* y, int64_t ldy) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) RowsK<4>(wu, n, xq, i0 + i, bias, y + i * ldy, ldy);
  if (m - i == 3) RowsK<3>(wu, n, xq, i0 + i, bias, y + i * ldy, ldy);
  if (m - i == 2) RowsK<2>(wu, n, xq, i0 + i, bias, y + i * ldy, ldy);
  if (m - i == 1) RowsK<1>(wu, n, xq, i0 + i, bias, y + i * ldy, ldy);
}

}  // namespace kvz::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvz::cpu {

HWY_EXPORT(QdotTileK);

void qdot_tile_k(const WUnpackedRows& wu, int64_t n, const XQuantRows& xq, int64_t i0, int64_t m,
                 const float* bias, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(QdotTileK)(wu, n, xq, i0, m, bias, y, ldy);
}

}  // namespace kvz::cpu
#endif  // HWY_ONCE
