// Scalar dequantisation of every weight DType to f32, bit-exact with ggml's dequantize_row_* and
// the Python gguf package (float32 math in the same order: (d * scale) * q - (dmin * min)).
// (runtime/cpu; the oracle for the shaders in shaders/include/dequant.glsl.)
#include "runtime/cpu/dequant.h"

#include "runtime/error.h"

namespace kvz::cpu {
namespace {

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
float rdh(const uint8_t* p) { return f16_to_f32(rd16(p)); }
uint32_t rd32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

// 6-bit scale and min of sub-block j (0..7) of a q4_k/q5_k block (ggml get_scale_min_k4).
void scale_min_k4(int j, const uint8_t* q, int& sc, int& mn) {
  if (j < 4) {
    sc = q[j] & 63;
    mn = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void block_q8_0(const uint8_t* b, float* y) {
  const float d = rdh(b);
  for (int j = 0; j < 32; ++j) y[j] = float(int8_t(b[2 + j])) * d;
}
void block_q4_0(const uint8_t* b, float* y) {
  const float d = rdh(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float((b[2 + j] & 0xF) - 8);
    y[j + 16] = d * float((b[2 + j] >> 4) - 8);
  }
}
void block_q4_1(const uint8_t* b, float* y) {
  const float d = rdh(b), m = rdh(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(b[4 + j] & 0xF) + m;
    y[j + 16] = d * float(b[4 + j] >> 4) + m;
  }
}
void block_q5_0(const uint8_t* b, float* y) {
  const float d = rdh(b);
  const uint32_t qh = rd32(b + 2);
  for (int j = 0; j < 16; ++j) {
    int q0 = int((b[6 + j] & 0xF) | (((qh >> j) & 1) << 4)) - 16;
    int q1 = int((b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
    y[j] = d * float(q0);
    y[j + 16] = d * float(q1);
  }
}
void block_q5_1(const uint8_t* b, float* y) {
  const float d = rdh(b), m = rdh(b + 2);
  const uint32_t qh = rd32(b + 4);
  for (int j = 0; j < 16; ++j) {
    uint32_t q0 = (b[8 + j] & 0xF) | (((qh >> j) & 1) << 4);
    uint32_t q1 = (b[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * float(q0) + m;
    y[j + 16] = d * float(q1) + m;
  }
}
// q4_k and q5_k share the scale layout; qh == nullptr for q4_k.
void block_qk(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = rdh(b), dmin = rdh(b + 2);
  const uint8_t* scales = b + 4;
  for (int c = 0; c < 4; ++c) {  // 64 values per chunk: 32 low nibbles, then 32 high nibbles
    for (int h = 0; h < 2; ++h) {
      int sc, mn;
      scale_min_k4(2 * c + h, scales, sc, mn);
      const float d1 = d * float(sc), m1 = dmin * float(mn);
      for (int l = 0; l < 32; ++l) {
        int q = (qs[32 * c + l] >> (4 * h)) & 0xF;
        if (qh && ((qh[l] >> (2 * c + h)) & 1)) q += 16;
        y[64 * c + 32 * h + l] = d1 * float(q) - m1;
      }
    }
  }
}
void block_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = rdh(b + 208);
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      for (int quad = 0; quad < 4; ++quad) {
        int lo = (ql[64 * half + l + 32 * (quad & 1)] >> (4 * (quad >> 1))) & 0xF;
        int hi = (qh[32 * half + l] >> (2 * quad)) & 3;
        int q = (lo | (hi << 4)) - 32;
        y[128 * half + 32 * quad + l] = d * float(sc[8 * half + l / 16 + 2 * quad]) * float(q);
      }
    }
  }
}

}  // namespace

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, u;
  if (exp == 0x1F) {
    u = sign | 0x7F800000 | (man << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal: renormalise
    int e = 113;
    while (!(man & 0x400)) {
      man <<= 1;
      --e;
    }
    u = sign | (uint32_t(e) << 23) | ((man & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  uint32_t a = u & 0x7FFFFFFF;
  if (a > 0x7F800000) return uint16_t(sign | 0x7E00);   // NaN
  if (a >= 0x477FF000) return uint16_t(sign | 0x7C00);  // rounds to inf
  if (a < 0x38800000) {                                 // subnormal half (or zero)
    if (a < 0x33000000) return uint16_t(sign);
    uint32_t e = a >> 23, man = (a & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - e;  // 14 + (113 - e) - 1 ... value = man >> (shift)
    uint32_t r = man >> shift, rem = man & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = ((a >> 13) - (112u << 10)), rem = a & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;
  return uint16_t(sign | r);
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const DTypeInfo& info = dtype_info(t);
  KVZ_CHECK(n % info.block_elems == 0, "dequantize_row: {} values of {}", n, info.name);
  const auto* p = static_cast<const uint8_t*>(src);
  const int64_t nb = n / info.block_elems;
  const int be = info.block_elems, bb = info.block_bytes;
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(rd16(p + 2 * i));
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(rd16(p + 2 * i));
      return;
    default:
      break;
  }
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = p + i * bb;
    float* y = dst + i * be;
    switch (t) {
      case DType::kQ8_0:
        block_q8_0(b, y);
        break;
      case DType::kQ4_0:
        block_q4_0(b, y);
        break;
      case DType::kQ4_1:
        block_q4_1(b, y);
        break;
      case DType::kQ5_0:
        block_q5_0(b, y);
        break;
      case DType::kQ5_1:
        block_q5_1(b, y);
        break;
      case DType::kQ4_K:
        block_qk(b, nullptr, b + 16, y);
        break;
      case DType::kQ5_K:
        block_qk(b, b + 16, b + 48, y);
        break;
      case DType::kQ6_K:
        block_q6_k(b, y);
        break;
      default:
        KVZ_CHECK(false, "dequantize_row: no weights of type {}", info.name);
    }
  }
}

void dequantize_rows(DType t, const void* w, int64_t k, int64_t row0, int64_t n_rows, float* dst) {
  const size_t rb = row_bytes(t, k);
  const auto* p = static_cast<const uint8_t*>(w) + size_t(row0) * rb;
  for (int64_t r = 0; r < n_rows; ++r) dequantize_row(t, p + size_t(r) * rb, dst + r * k, k);
}

}  // namespace kvz::cpu
