// SIMD kernels of the CPU matmul (runtime/cpu; contract in qdot.h). Highway compiles this file
// once per x86 level (foreach_target) and HWY_DYNAMIC_DISPATCH picks the best one the host runs,
// so a baseline x86-64 build uses AVX-512 VNNI where present. The 8-bit dot product of 4 adjacent
// lanes is the one place with per-level intrinsics (vpdpbusd, vpmaddubsw); other targets take a
// portable loop.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL  // also build the Ice Lake+ level (VNNI); Highway leaves it out unasked
#endif

#include "runtime/cpu/qdot.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/cpu/half.h"
#include "runtime/cpu/kquant_scales.h"
#include "runtime/error.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/cpu/qdot_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace kvz::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

#if HWY_TARGET != HWY_SCALAR  // one lane: DotRows has a plain loop there instead
using DI = hn::Repartition<int32_t, DF>;
using DU8 = hn::Repartition<uint8_t, DF>;
using DI8 = hn::Repartition<int8_t, DF>;

// acc[i] += sum_{j < 4} u[4i + j] * q[4i + j] (int32 lanes). u: unsigned codes <= 127, or signed
// ones (kSigned, stored in the u8 lanes) with |u| <= 128: the 16-bit pair sums cannot saturate.
template <bool kSigned>
HWY_INLINE hn::Vec<DI> Dot4(hn::Vec<DU8> u, hn::Vec<DI8> q, hn::Vec<DI> acc) {
#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3
  __m512i uu = u.raw, qq = q.raw;
  if constexpr (kSigned) {  // |u| . (q negated where u < 0)
    const __mmask64 neg = _mm512_movepi8_mask(uu);
    uu = _mm512_abs_epi8(uu);
    qq = _mm512_mask_sub_epi8(qq, neg, _mm512_setzero_si512(), qq);
  }
#if HWY_TARGET == HWY_AVX3_DL
  // The level's pragma names avxvnni but not avx512vnni, so the intrinsic is unavailable; the
  // CPU has it (Highway requires VNNI for this level).
  __m512i a = acc.raw;
  asm("vpdpbusd %[q], %[u], %[a]" : [a] "+v"(a) : [u] "v"(uu), [q] "v"(qq));
  return hn::Vec<DI>{a};
#else
  const __m512i p = _mm512_madd_epi16(_mm512_maddubs_epi16(uu, qq), _mm512_set1_epi16(1));
  return hn::Vec<DI>{_mm512_add_epi32(acc.raw, p)};
#endif
#elif HWY_TARGET == HWY_AVX2
  __m256i uu = u.raw, qq = q.raw;
  if constexpr (kSigned) {
    qq = _mm256_sign_epi8(qq, uu);
    uu = _mm256_sign_epi8(uu, uu);
  }
  const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(uu, qq), _mm256_set1_epi16(1));
  return hn::Vec<DI>{_mm256_add_epi32(acc.raw, p)};
#elif HWY_TARGET == HWY_SSE4 || HWY_TARGET == HWY_SSSE3
  __m128i uu = u.raw, qq = q.raw;
  if constexpr (kSigned) {
    qq = _mm_sign_epi8(qq, uu);
    uu = _mm_sign_epi8(uu, uu);
  }
  const __m128i p = _mm_madd_epi16(_mm_maddubs_epi16(uu, qq), _mm_set1_epi16(1));
  return hn::Vec<DI>{_mm_add_epi32(acc.raw, p)};
#else
  const DU8 du;
  const DI8 dq;
  const DI di;
  HWY_ALIGN uint8_t ub[hn::MaxLanes(du)];
  HWY_ALIGN int8_t qb[hn::MaxLanes(dq)];
  HWY_ALIGN int32_t ob[hn::MaxLanes(di)];
  hn::Store(u, du, ub);
  hn::Store(q, dq, qb);
  hn::Store(acc, di, ob);
  for (size_t i = 0; i < hn::Lanes(di); ++i)
    for (size_t j = 4 * i; j < 4 * i + 4; ++j)
      ob[i] += (kSigned ? int32_t(int8_t(ub[j])) : int32_t(ub[j])) * int32_t(qb[j]);
  return hn::Load(di, ob);
#endif
}
#endif  // HWY_TARGET != HWY_SCALAR

// ---------------------------------------------------------------- activations

void QuantizeXRows(const float* x, int64_t i0, int64_t i1, const XQuantRows& xq) {
  const int64_t k = xq.k, kp = xq.stride, bl = xq.block;
  const hn::CappedTag<float, 32> d;
  const hn::Rebind<int8_t, decltype(d)> d8;
  const size_t n = hn::Lanes(d);
  for (int64_t i = i0; i < i1; ++i) {
    const float* xr = x + i * k;
    int8_t* q = xq.q + i * kp;
    float* d16 = xq.d16 + i * (kp / 16);
    float* s16 = xq.s16 + i * (kp / 16);
    for (int64_t b = 0; b < k / bl; ++b) {
      const float* v = xr + bl * b;
      auto vmax = hn::Zero(d);
      for (int64_t j = 0; j < bl; j += int64_t(n))
        vmax = hn::Max(vmax, hn::Abs(hn::LoadU(d, v + j)));
      const float amax = hn::GetLane(hn::MaxOfLanes(d, vmax));
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      const auto vinv = hn::Set(d, inv);
      for (int64_t j = 0; j < bl; j += int64_t(n))
        hn::StoreU(hn::DemoteTo(d8, hn::NearestInt(hn::Mul(hn::LoadU(d, v + j), vinv))), d8,
                   q + bl * b + j);
      const float dx = amax / 127.0f;
      for (int64_t g = bl * b / 16; g < bl * (b + 1) / 16; ++g) {
        int32_t s = 0;
        for (int j = 0; j < 16; ++j) s += q[16 * g + j];
        d16[g] = dx;
        s16[g] = dx * float(s);
      }
    }
    std::fill(q + k, q + kp, int8_t{0});
    std::fill(d16 + k / 16, d16 + kp / 16, 0.0f);
    std::fill(s16 + k / 16, s16 + kp / 16, 0.0f);
  }
}

// ---------------------------------------------------------------- weight unpacking

inline float rdh(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// K-quant integer scales of one block: sc[e] for value pair e (128 entries: each scale of a group
// of 2 * per pairs repeated), d256 = d; the offsets b16 are set by the caller.
template <int kPer, class T>
HWY_INLINE void KPairScales(const T* s, int16_t* sc) {
  const hn::CappedTag<int16_t, kPer> d;
  for (int g = 0; g < 128 / kPer; ++g)
    for (size_t l = 0; l < size_t(kPer); l += hn::Lanes(d))
      hn::StoreU(hn::Set(d, int16_t(s[g])), d, sc + kPer * g + l);
}

// s16[g] = d * sc[g / 2], b16[g] = -(dmin * mn[g / 2]) for the 16 groups of one K block.
HWY_INLINE void KScales(const uint8_t* sm, float d, float dmin, float* s16, float* b16) {
  HWY_ALIGN uint8_t e[32];  // each scale, then each min, twice
#if HWY_TARGET == HWY_SCALAR
  for (int j = 0; j < 8; ++j) {
    e[2 * j] = e[2 * j + 1] = sm[j];
    e[16 + 2 * j] = e[17 + 2 * j] = sm[8 + j];
  }
#else
  const hn::Full128<uint8_t> db;
  HWY_ALIGN static constexpr uint8_t kDup[32] = {0,  0,  1,  1,  2,  2,  3,  3,  4,  4,  5,
                                                 5,  6,  6,  7,  7,  8,  8,  9,  9,  10, 10,
                                                 11, 11, 12, 12, 13, 13, 14, 14, 15, 15};
  const auto v = hn::LoadU(db, sm);
  hn::Store(hn::TableLookupBytes(v, hn::Load(db, kDup)), db, e);
  hn::Store(hn::TableLookupBytes(v, hn::Load(db, kDup + 16)), db, e + 16);
#endif
  const hn::CappedTag<float, 16> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<uint8_t, decltype(df)> d8;
  const auto vd = hn::Set(df, d), vm = hn::Set(df, -dmin);
  for (size_t g = 0; g < 16; g += hn::Lanes(df)) {
    const auto sc = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, e + g)));
    const auto mn = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, e + 16 + g)));
    hn::StoreU(hn::Mul(vd, sc), df, s16 + g);
    hn::StoreU(hn::Mul(vm, mn), df, b16 + g);
  }
}

// Low and high nibbles of 32 bytes: lo[l] = src[l] & 15, hi[l] = src[l] >> 4.
HWY_INLINE void Nibbles32(const uint8_t* src, uint8_t* lo, uint8_t* hi) {
  const hn::CappedTag<uint8_t, 32> d;
  const auto m = hn::Set(d, uint8_t{15});
  for (size_t l = 0; l < 32; l += hn::Lanes(d)) {
    const auto v = hn::LoadU(d, src + l);
    hn::StoreU(hn::And(v, m), d, lo + l);
    hn::StoreU(hn::ShiftRight<4>(v), d, hi + l);
  }
}

// 32-value legacy block: codes of the low nibbles then the high ones (ggml order).
inline void Legacy4(const uint8_t* qs, uint8_t* u) {
  const hn::CappedTag<uint8_t, 16> d;
  const auto m = hn::Set(d, uint8_t{15});
  for (size_t l = 0; l < 16; l += hn::Lanes(d)) {
    const auto v = hn::LoadU(d, qs + l);
    hn::StoreU(hn::And(v, m), d, u + l);
    hn::StoreU(hn::ShiftRight<4>(v), d, u + 16 + l);
  }
}

inline void SetGroups(float* s16, float* b16, int64_t g, int n, float s, float b) {
  for (int i = 0; i < n; ++i) s16[g + i] = s, b16[g + i] = b;
}

// With sc (K-quants only) the integer layout: sc and d256 (s16 untouched); else s16.
void UnpackRow(DType t, const uint8_t* p, int64_t k, uint8_t* u, float* s16, float* b16,
               int16_t* sc, float* d256) {
  switch (t) {
    case DType::kQ8_0:
      for (int64_t b = 0; b < k / 32; ++b, p += 34) {
        std::memcpy(u + 32 * b, p + 2, 32);
        SetGroups(s16, b16, 2 * b, 2, rdh(p), 0.0f);
      }
      return;
    case DType::kQ4_0:
      for (int64_t b = 0; b < k / 32; ++b, p += 18) {
        const float d = rdh(p);
        Legacy4(p + 2, u + 32 * b);
        SetGroups(s16, b16, 2 * b, 2, d, -8.0f * d);
      }
      return;
    case DType::kQ4_1:
      for (int64_t b = 0; b < k / 32; ++b, p += 20) {
        Legacy4(p + 4, u + 32 * b);
        SetGroups(s16, b16, 2 * b, 2, rdh(p), rdh(p + 2));
      }
      return;
    case DType::kQ5_0:
    case DType::kQ5_1: {
      const bool has_min = t == DType::kQ5_1;
      const int bb = has_min ? 24 : 22, hoff = has_min ? 4 : 2;
      for (int64_t b = 0; b < k / 32; ++b, p += bb) {
        const float d = rdh(p);
        uint32_t qh;
        std::memcpy(&qh, p + hoff, 4);
        uint8_t* ub = u + 32 * b;
        Legacy4(p + hoff + 4, ub);
        for (int j = 0; j < 32; ++j) ub[j] |= uint8_t(((qh >> j) & 1u) << 4);
        SetGroups(s16, b16, 2 * b, 2, d, has_min ? rdh(p + 2) : -16.0f * d);
      }
      return;
    }
    case DType::kQ4_K:
    case DType::kQ5_K: {
      const bool five = t == DType::kQ5_K;
      const int bb = five ? 176 : 144;
      for (int64_t b = 0; b < k / 256; ++b, p += bb) {
        const float d = rdh(p), dmin = rdh(p + 2);
        const uint8_t* qh = p + 16;
        const uint8_t* qs = p + (five ? 48 : 16);
        uint8_t* ub = u + 256 * b;
        for (int c = 0; c < 4; ++c) Nibbles32(qs + 32 * c, ub + 64 * c, ub + 64 * c + 32);
        uint8_t sm[16];
        scales_mins_k4(p + 4, sm);
        if (sc) {  // integer scales; KScales' float ones discarded
          float s_unused[16];
          KScales(sm, d, dmin, s_unused, b16 + 16 * b);
          KPairScales<16>(sm, sc + 128 * b);
          d256[b] = d;
        } else {
          KScales(sm, d, dmin, s16 + 16 * b, b16 + 16 * b);
        }
        if (five)
          for (int c = 0; c < 8; ++c)
            for (int l = 0; l < 32; ++l) ub[32 * c + l] |= uint8_t(((qh[l] >> c) & 1u) << 4);
      }
      return;
    }
    case DType::kQ6_K:
      for (int64_t b = 0; b < k / 256; ++b, p += 210) {
        const uint8_t* ql = p;
        const uint8_t* qh = p + 128;
        const int8_t* sc8 = reinterpret_cast<const int8_t*>(p + 192);
        const float d = rdh(p + 208);
        uint8_t* ub = u + 256 * b;
        for (int half = 0; half < 2; ++half) {
          uint8_t lo[4][32];  // quad 0..3: low 4 bits
          Nibbles32(ql + 64 * half, lo[0], lo[2]);
          Nibbles32(ql + 64 * half + 32, lo[1], lo[3]);
          for (int quad = 0; quad < 4; ++quad)
            for (int l = 0; l < 32; ++l)
              ub[128 * half + 32 * quad + l] =
                  uint8_t(lo[quad][l] | (((qh[32 * half + l] >> (2 * quad)) & 3) << 4));
        }
        // Group g of 16 values has scale sc[g]; codes are q + 32.
        const hn::CappedTag<float, 16> df;
        const hn::Rebind<int32_t, decltype(df)> di;
        const hn::Rebind<int8_t, decltype(df)> d8;
        for (size_t g = 0; g < 16; g += hn::Lanes(df)) {
          const auto sv =
              hn::Mul(hn::Set(df, d), hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, sc8 + g))));
          if (!sc) hn::StoreU(sv, df, s16 + 16 * b + g);
          hn::StoreU(hn::Mul(hn::Set(df, -32.0f), sv), df, b16 + 16 * b + g);
        }
        if (sc) {
          KPairScales<8>(sc8, sc + 128 * b);
          d256[b] = d;
        }
      }
      return;
    default:
      KVZ_CHECK(false, "qdot: no unpacking for {}", dtype_name(t));
  }
}

void UnpackWRows(DType t, const uint8_t* w, int64_t r0, int64_t r1, const WUnpackedRows& wu) {
  const int64_t k = wu.k, kp = wu.stride;
  const size_t rb = row_bytes(t, k);
  for (int64_t r = r0; r < r1; ++r) {
    uint8_t* u = wu.u + (r - r0) * kp;
    float* s16 = wu.s16 + (r - r0) * (kp / 16);
    float* b16 = wu.b16 + (r - r0) * (kp / 16);
    int16_t* sc = wu.sc ? wu.sc + (r - r0) * (kp / 2) : nullptr;
    float* d256 = wu.d256 ? wu.d256 + (r - r0) * (kp / 256) : nullptr;
    UnpackRow(t, w + size_t(r) * rb, k, u, s16, b16, sc, d256);
    std::fill(u + k, u + kp, uint8_t{0});
    if (sc) continue;  // k % 256 == 0: no padding
    std::fill(s16 + k / 16, s16 + kp / 16, 0.0f);
    std::fill(b16 + k / 16, b16 + kp / 16, 0.0f);
  }
}

// ---------------------------------------------------------------- integer dot tiles

// The R x rows of a tile from row i: their int8 values, per-16 scales and sums, and zeroed
// accumulators (both K-quant dot kernels start this way).
template <int R>
HWY_INLINE void XRows(const XQuantRows& xq, int64_t i, const int8_t* (&q)[R], const float* (&xd)[R],
                      const float* (&xs)[R], hn::Vec<DF> (&acc)[R]) {
  const int64_t kp = xq.stride, gp = kp / 16;
  for (int r = 0; r < R; ++r) {
    q[r] = xq.q + (i + r) * kp;
    xd[r] = xq.d16 + (i + r) * gp;
    xs[r] = xq.s16 + (i + r) * gp;
    acc[r] = hn::Zero(DF());
  }
}

#if HWY_TARGET == HWY_SCALAR
struct SubstepIndices {};

template <bool kSigned, int R>
void DotRows(const WUnpackedRows& wu, int64_t j, const XQuantRows& xq, int64_t i,
             const SubstepIndices&, float* out) {
  const int64_t kp = wu.stride;
  for (int r = 0; r < R; ++r) {
    const uint8_t* u = wu.u + j * kp;
    const int8_t* q = xq.q + (i + r) * kp;
    float acc = 0;
    for (int64_t g = 0; g < kp / 16; ++g) {
      int32_t s = 0;
      for (int e = 0; e < 16; ++e)
        s += (kSigned ? int32_t(int8_t(u[16 * g + e])) : int32_t(u[16 * g + e])) * q[16 * g + e];
      acc += wu.s16[j * (kp / 16) + g] * xq.d16[(i + r) * (kp / 16) + g] * float(s) +
             wu.b16[j * (kp / 16) + g] * xq.s16[(i + r) * (kp / 16) + g];
    }
    out[r] = acc;
  }
}
#else
// out[r] = w row j . x row i + r for r < R. A step of Lanes(DF) groups (16 * Lanes values) loads
// their combined scales once; each of its 4 integer sub-steps then takes its groups' scales by
// a lane permutation (float lane l of a sub-step belongs to group l / 4).
// Lane permutations of the 4 sub-steps: sub-step t takes lanes t * Lanes / 4 + l / 4.
struct SubstepIndices {
  decltype(hn::SetTableIndices(DF(), static_cast<const int32_t*>(nullptr))) v[4];
  SubstepIndices() {
    const DF df;
    const size_t nf = hn::Lanes(df);
    HWY_ALIGN int32_t idx[hn::MaxLanes(df)];
    for (size_t t = 0; t < 4; ++t) {
      for (size_t l = 0; l < nf; ++l) idx[l] = int32_t(t * (nf / 4) + l / 4);
      v[t] = hn::SetTableIndices(df, idx);
    }
  }
};

template <bool kSigned, int R>
void DotRows(const WUnpackedRows& wu, int64_t j, const XQuantRows& xq, int64_t i,
             const SubstepIndices& ix, float* out) {
  const DF df;
  const DI di;
  const DU8 du;
  const DI8 dq;
  const size_t nf = hn::Lanes(df), nb = hn::Lanes(du);
  const int64_t kp = wu.stride, gp = kp / 16;
  const auto ix0 = ix.v[0], ix1 = ix.v[1], ix2 = ix.v[2], ix3 = ix.v[3];
  const uint8_t* u = wu.u + j * kp;
  const float* ws = wu.s16 + j * gp;
  const float* wb = wu.b16 + j * gp;
  const int8_t* q[R];
  const float *xd[R], *xs[R];
  hn::Vec<DF> acc[R];
  XRows<R>(xq, i, q, xd, xs, acc);
  // The padding of the row's last step is zero: its sub-steps past the last group holding values
  // are skipped (k = 576, SmolLM2's width, pads to 768).
  const int64_t gk = (wu.k + 15) / 16, gs = int64_t(nf / 4);
  for (int64_t g = 0; g < gp; g += int64_t(nf)) {
    const auto sw = hn::LoadU(df, ws + g), bw = hn::LoadU(df, wb + g);
    hn::Vec<DF> c[R];
    for (int r = 0; r < R; ++r) {
      c[r] = hn::Mul(sw, hn::LoadU(df, xd[r] + g));
      acc[r] = hn::MulAdd(bw, hn::LoadU(df, xs[r] + g), acc[r]);
    }
    const uint8_t* ug = u + 16 * g;
    const auto u0 = hn::LoadU(du, ug), u1 = hn::LoadU(du, ug + nb);
    const auto u2 = hn::LoadU(du, ug + 2 * nb), u3 = hn::LoadU(du, ug + 3 * nb);
    const auto z = hn::Zero(di);
    if (g + 4 * gs <= gk) {
      for (int r = 0; r < R; ++r) {
        const int8_t* qg = q[r] + 16 * g;
        const auto p0 = Dot4<kSigned>(u0, hn::LoadU(dq, qg), z);
        const auto p1 = Dot4<kSigned>(u1, hn::LoadU(dq, qg + nb), z);
        const auto p2 = Dot4<kSigned>(u2, hn::LoadU(dq, qg + 2 * nb), z);
        const auto p3 = Dot4<kSigned>(u3, hn::LoadU(dq, qg + 3 * nb), z);
        acc[r] = hn::MulAdd(hn::ConvertTo(df, p0), hn::TableLookupLanes(c[r], ix0), acc[r]);
        acc[r] = hn::MulAdd(hn::ConvertTo(df, p1), hn::TableLookupLanes(c[r], ix1), acc[r]);
        acc[r] = hn::MulAdd(hn::ConvertTo(df, p2), hn::TableLookupLanes(c[r], ix2), acc[r]);
        acc[r] = hn::MulAdd(hn::ConvertTo(df, p3), hn::TableLookupLanes(c[r], ix3), acc[r]);
      }
      continue;
    }
    const hn::Vec<DU8> us[4] = {u0, u1, u2, u3};
    for (int t = 0; t < 4 && g + t * gs < gk; ++t)
      for (int r = 0; r < R; ++r) {
        const auto p = Dot4<kSigned>(us[t], hn::LoadU(dq, q[r] + 16 * g + t * nb), z);
        acc[r] = hn::MulAdd(hn::ConvertTo(df, p), hn::TableLookupLanes(c[r], ix.v[t]), acc[r]);
      }
  }
  for (int r = 0; r < R; ++r) out[r] = hn::GetLane(hn::SumOfLanes(df, acc[r]));
}
#endif

// Decode's Q4_K and Q6_K rows straight from their blocks (AVX-512 levels, whose 64-byte code
// vectors each take 64 consecutive values: Q4_K's 32-byte chunk of low then high nibbles, Q6_K's
// 64 low nibbles or high nibbles with their 2 high bits), so no unpacked row is written and read
// back; each block's per-16 scales are computed on the stack. Other levels return false and the
// caller unpacks.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// The 256 codes of block p as 4 vectors of 64 values, its scales and offsets per 16 values.
template <DType kT>
HWY_INLINE void BlockCodes(const uint8_t* p, hn::Vec<DU8>* u, float* s16, float* b16) {
  const DU8 du;
  const hn::Half<DU8> dh;
  const auto m4 = hn::Set(dh, uint8_t{15});
  if constexpr (kT == DType::kQ4_K) {
    uint8_t sm[16];
    scales_mins_k4(p + 4, sm);
    KScales(sm, rdh(p), rdh(p + 2), s16, b16);
    for (int t = 0; t < 4; ++t) {
      const auto v = hn::LoadU(dh, p + 16 + 32 * t);
      u[t] = hn::Combine(du, hn::And(hn::ShiftRight<4>(v), m4), hn::And(v, m4));
    }
  } else {  // Q6_K: ql[128], qh[64], int8 scales[16], d; codes q + 32 in 0..63
    const hn::CappedTag<float, 16> df;
    const hn::Rebind<int32_t, decltype(df)> di;
    const hn::Rebind<int8_t, decltype(df)> d8;
    const float d = rdh(p + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(p + 192);
    for (size_t g = 0; g < 16; g += hn::Lanes(df)) {
      const auto sv =
          hn::Mul(hn::Set(df, d), hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, sc + g))));
      hn::Store(sv, df, s16 + g);
      hn::Store(hn::Mul(hn::Set(df, -32.0f), sv), df, b16 + g);
    }
    const auto m3 = hn::Set(du, uint8_t{3}), m15 = hn::Set(du, uint8_t{15});
    for (int h = 0; h < 2; ++h) {
      const auto ql = hn::LoadU(du, p + 64 * h);
      const auto qh = hn::LoadU(dh, p + 128 + 32 * h);
      const auto h01 = hn::Combine(du, hn::ShiftRight<2>(qh), qh);
      const auto h23 = hn::Combine(du, hn::ShiftRight<6>(qh), hn::ShiftRight<4>(qh));
      u[2 * h] = hn::Or(hn::And(ql, m15), hn::ShiftLeft<4>(hn::And(h01, m3)));
      u[2 * h + 1] = hn::Or(hn::ShiftRight<4>(ql), hn::ShiftLeft<4>(hn::And(h23, m3)));
    }
  }
}

template <DType kT, int R>
void DotRowsDirect(const uint8_t* p, const XQuantRows& xq, int64_t i, const SubstepIndices& ix,
                   float* out) {
  const DF df;
  const DI di;
  const DI8 dq;
  const int64_t kp = xq.stride, gp = kp / 16;
  const int8_t* q[R];
  const float *xd[R], *xs[R];
  hn::Vec<DF> acc[R];
  XRows<R>(xq, i, q, xd, xs, acc);
  const auto z = hn::Zero(di);
  const size_t bb = row_bytes(kT, 256);
  for (int64_t b = 0; b < xq.k / 256; ++b, p += bb) {
    HWY_ALIGN float s16[16], b16[16];
    hn::Vec<DU8> u[4];
    BlockCodes<kT>(p, u, s16, b16);
    const auto sw = hn::Load(df, s16), bw = hn::Load(df, b16);
    hn::Vec<DF> c[R];
    for (int r = 0; r < R; ++r) {
      c[r] = hn::Mul(sw, hn::LoadU(df, xd[r] + 16 * b));
      acc[r] = hn::MulAdd(bw, hn::LoadU(df, xs[r] + 16 * b), acc[r]);
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < 4; ++t) {
        const auto pt = Dot4<false>(u[t], hn::LoadU(dq, q[r] + 256 * b + 64 * t), z);
        acc[r] = hn::MulAdd(hn::ConvertTo(df, pt), hn::TableLookupLanes(c[r], ix.v[t]), acc[r]);
      }
  }
  for (int r = 0; r < R; ++r) out[r] = hn::GetLane(hn::SumOfLanes(df, acc[r]));
}

template <DType kT>
void RowDirect(const uint8_t* w, const XQuantRows& xq, int64_t m, const float* bias, float* y,
               int64_t ldy) {
  const SubstepIndices ix;
  float out[4];
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) {
    DotRowsDirect<kT, 4>(w, xq, i, ix, out);
    for (int r = 0; r < 4; ++r) y[(i + r) * ldy] = out[r] + (bias ? bias[0] : 0.0f);
  }
  for (; i < m; ++i) {
    DotRowsDirect<kT, 1>(w, xq, i, ix, out);
    y[i * ldy] = out[0] + (bias ? bias[0] : 0.0f);
  }
}
#endif

bool QdotRowDirect(DType t, const uint8_t* w, const XQuantRows& xq, int64_t m, const float* bias,
                   float* y, int64_t ldy) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (xq.block != 32) return false;
  if (t == DType::kQ4_K) return RowDirect<DType::kQ4_K>(w, xq, m, bias, y, ldy), true;
  if (t == DType::kQ6_K) return RowDirect<DType::kQ6_K>(w, xq, m, bias, y, ldy), true;
  return false;
#else
  (void)t, (void)w, (void)xq, (void)m, (void)bias, (void)y, (void)ldy;
  return false;
#endif
}

template <bool kSigned>
void QdotTileT(const WUnpackedRows& wu, int64_t n, const XQuantRows& xq, int64_t i0, int64_t m,
               const float* bias, float* y, int64_t ldy) {
  constexpr int kR = 4;  // x rows per pass: each weight vector load serves kR dot products
  const SubstepIndices ix;
  float out[kR];
  int64_t i = 0;
  for (; i + kR <= m; i += kR)
    for (int64_t j = 0; j < n; ++j) {
      DotRows<kSigned, kR>(wu, j, xq, i0 + i, ix, out);
      for (int r = 0; r < kR; ++r) y[(i + r) * ldy + j] = out[r] + (bias ? bias[j] : 0.0f);
    }
  for (; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      DotRows<kSigned, 1>(wu, j, xq, i0 + i, ix, out);
      y[i * ldy + j] = out[0] + (bias ? bias[j] : 0.0f);
    }
}

void QdotTile(const WUnpackedRows& wu, int64_t n, const XQuantRows& xq, int64_t i0, int64_t m,
              const float* bias, float* y, int64_t ldy) {
  if (wu.signed_codes)
    QdotTileT<true>(wu, n, xq, i0, m, bias, y, ldy);
  else
    QdotTileT<false>(wu, n, xq, i0, m, bias, y, ldy);
}

// ---------------------------------------------------------------- float weights

void FloatWRows(DType t, const uint8_t* w, int64_t k, int64_t r0, int64_t r1, float* dst) {
  const DF df;
  const size_t nf = hn::Lanes(df);
  const hn::Rebind<hwy::float16_t, DF> dh;
  const hn::Rebind<hwy::bfloat16_t, DF> db;
  for (int64_t r = r0; r < r1; ++r) {
    float* y = dst + (r - r0) * k;
    if (t == DType::kF32) {
      std::memcpy(y, w + size_t(r) * size_t(k) * 4, size_t(k) * 4);
      continue;
    }
    const uint16_t* src = reinterpret_cast<const uint16_t*>(w) + r * k;
    int64_t c = 0;
    if (t == DType::kF16) {
      for (; c + int64_t(nf) <= k; c += int64_t(nf))
        hn::StoreU(
            hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(src + c))), df,
            y + c);
      for (; c < k; ++c) y[c] = f16_to_f32(src[c]);
    } else {
      for (; c + int64_t(nf) <= k; c += int64_t(nf))
        hn::StoreU(
            hn::PromoteTo(df, hn::LoadU(db, reinterpret_cast<const hwy::bfloat16_t*>(src + c))), df,
            y + c);
      for (; c < k; ++c) y[c] = bf16_to_f32(src[c]);
    }
  }
}

template <int R>
void FdotRows(const float* w, const float* x, int64_t k, float* out) {
  const DF df;
  const size_t nf = hn::Lanes(df);
  hn::Vec<DF> acc[R];
  for (int r = 0; r < R; ++r) acc[r] = hn::Zero(df);
  int64_t c = 0;
  for (; c + int64_t(nf) <= k; c += int64_t(nf)) {
    const auto wv = hn::LoadU(df, w + c);
    for (int r = 0; r < R; ++r) acc[r] = hn::MulAdd(wv, hn::LoadU(df, x + r * k + c), acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    float s = hn::GetLane(hn::SumOfLanes(df, acc[r]));
    for (int64_t e = c; e < k; ++e) s += w[e] * x[r * k + e];
    out[r] = s;
  }
}

void FdotTile(const float* w, int64_t n, const float* x, int64_t m, int64_t k, const float* bias,
              float* y, int64_t ldy) {
  constexpr int kR = 4;
  float out[kR];
  int64_t i = 0;
  for (; i + kR <= m; i += kR)
    for (int64_t j = 0; j < n; ++j) {
      FdotRows<kR>(w + j * k, x + i * k, k, out);
      for (int r = 0; r < kR; ++r) y[(i + r) * ldy + j] = out[r] + (bias ? bias[j] : 0.0f);
    }
  for (; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      FdotRows<1>(w + j * k, x + i * k, k, out);
      y[i * ldy + j] = out[0] + (bias ? bias[j] : 0.0f);
    }
}

}  // namespace kvz::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvz::cpu {

HWY_EXPORT(QuantizeXRows);
HWY_EXPORT(UnpackWRows);
HWY_EXPORT(QdotTile);
HWY_EXPORT(QdotRowDirect);
HWY_EXPORT(FloatWRows);
HWY_EXPORT(FdotTile);

bool qdot_supports(DType t) {
  switch (t) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

bool qdot_k_layout(DType t) { return t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K; }

void quantize_x_rows(const float* x, int64_t i0, int64_t i1, const XQuantRows& xq) {
  KVZ_CHECK((xq.block == 32 || xq.block == 256) && xq.k % xq.block == 0 &&
            xq.stride == qdot_padded(xq.k));
  HWY_DYNAMIC_DISPATCH(QuantizeXRows)(x, i0, i1, xq);
}

void unpack_w_rows(DType t, const uint8_t* w, int64_t r0, int64_t r1, const WUnpackedRows& wu) {
  KVZ_CHECK(qdot_supports(t) && wu.k % dtype_info(t).block_elems == 0 &&
            wu.stride == qdot_padded(wu.k) && wu.signed_codes == (t == DType::kQ8_0) &&
            (wu.sc == nullptr || qdot_k_layout(t)) && (wu.sc != nullptr) == (wu.d256 != nullptr));
  HWY_DYNAMIC_DISPATCH(UnpackWRows)(t, w, r0, r1, wu);
}

void qdot_tile(const WUnpackedRows& wu, int64_t n, const XQuantRows& xq, int64_t i0, int64_t m,
               const float* bias, float* y, int64_t ldy) {
  KVZ_CHECK(wu.k == xq.k && wu.stride == xq.stride && wu.stride % kQdotPad == 0 &&
            xq.block == (wu.sc ? 256 : 32));
  if (wu.sc) return qdot_tile_k(wu, n, xq, i0, m, bias, y, ldy);
  HWY_DYNAMIC_DISPATCH(QdotTile)(wu, n, xq, i0, m, bias, y, ldy);
}

bool qdot_row_direct(DType t, const uint8_t* w, const XQuantRows& xq, int64_t m, const float* bias,
                     float* y, int64_t ldy) {
  return HWY_DYNAMIC_DISPATCH(QdotRowDirect)(t, w, xq, m, bias, y, ldy);
}

void float_w_rows(DType t, const uint8_t* w, int64_t k, int64_t r0, int64_t r1, float* dst) {
  KVZ_CHECK(t == DType::kF32 || t == DType::kF16 || t == DType::kBF16);
  HWY_DYNAMIC_DISPATCH(FloatWRows)(t, w, k, r0, r1, dst);
}

void fdot_tile(const float* w, int64_t n, const float* x, int64_t m, int64_t k, const float* bias,
               float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(FdotTile)(w, n, x, m, k, bias, y, ldy);
}

std::vector<int64_t> simd_targets() { return hwy::SupportedAndGeneratedTargets(); }

std::string simd_target_name() {
  // The best supported target among those compiled is the one the dispatcher picks.
  const std::vector<int64_t> t = simd_targets();
  return t.empty() ? "scalar" : hwy::TargetName(t.front());
}

std::string simd_name(int64_t target) { return hwy::TargetName(target); }

void simd_force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

}  // namespace kvz::cpu
#endif  // HWY_ONCE
