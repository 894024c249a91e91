// Exhaustive tests of the scalar f16 / bf16 conversions in runtime/cpu/half.h (tests/runtime).
#include "runtime/cpu/half.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace kvz::test {
namespace {

using cpu::bf16_to_f32;
using cpu::f16_to_f32;
using cpu::f32_to_bf16;
using cpu::f32_to_f16;

bool f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool bf16_is_nan(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0; }

TEST(Half, EveryF16RoundTrips) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const float f = f16_to_f32(h);
    if (f16_is_nan(h)) {
      EXPECT_TRUE(std::isnan(f)) << i;
      EXPECT_TRUE(f16_is_nan(f32_to_f16(f))) << i;
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "f16 bits " << i << " -> " << f;
  }
}

// The vectorisable decoder the fast attention path uses: bit-identical on all 65536 inputs
// (NaNs keep sign and payload).
TEST(Half, BranchlessF16DecodeMatchesExact) {
  for (uint32_t i = 0; i < 0x10000u; ++i) {
    const auto h = static_cast<uint16_t>(i);
    ASSERT_EQ(std::bit_cast<uint32_t>(cpu::f16_to_f32_branchless(h)),
              std::bit_cast<uint32_t>(f16_to_f32(h)))
        << "f16 bits " << i;
  }
}

TEST(Half, F16DecodesKnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
}

// Between every pair of adjacent finite f16 values the midpoint must round to the even one and its
// f32 neighbours to the nearer one; covers normals, subnormals, both signs and the overflow edge.
TEST(Half, F32ToF16RoundsToNearestEven) {
  for (uint32_t sign : {0u, 0x8000u}) {
    for (uint32_t i = 0; i < 0x7c00; ++i) {
      const auto lo = static_cast<uint16_t>(sign | i), hi = static_cast<uint16_t>(sign | (i + 1));
      const double a = f16_to_f32(lo);
      // For the largest finite value, the next step (2^16) is where binary16 would continue.
      const double b = i + 1 == 0x7c00 ? (sign ? -65536.0 : 65536.0) : double(f16_to_f32(hi));
      const float mid = static_cast<float>((a + b) / 2);  // exact: f16 needs 11 bits
      ASSERT_EQ(double(mid), (a + b) / 2);
      const uint16_t even = (i & 1u) ? hi : lo;
      ASSERT_EQ(f32_to_f16(mid), even) << "tie between f16 " << i << " and " << i + 1;
      ASSERT_EQ(f32_to_f16(std::nextafter(mid, static_cast<float>(a))), lo) << i;
      ASSERT_EQ(f32_to_f16(std::nextafter(mid, static_cast<float>(b))), hi) << i;
    }
  }
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);      // tie -> even (down)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);             // half the smallest subnormal -> 0
  EXPECT_EQ(f32_to_f16(3 * 0x1p-25f), 0x0002);         // subnormal tie -> even
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds to infinity
  EXPECT_EQ(f32_to_f16(-1e30f), 0xfc00);
  EXPECT_EQ(f32_to_f16(1e-30f), 0x0000);
  EXPECT_EQ(f32_to_f16(-1e-30f), 0x8000);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_TRUE(f16_is_nan(f32_to_f16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(f16_is_nan(f32_to_f16(std::bit_cast<float>(0x7f800001u))));  // payload in low bits
  EXPECT_EQ(f32_to_f16(std::bit_cast<float>(0xffc00000u)) & 0x8000u, 0x8000u);
}

#ifdef __FLT16_MAX__
// Independent oracle where the compiler has a native binary16 type: a strided sweep of all f32s.
TEST(Half, F32ToF16MatchesCompilerFloat16) {
  for (uint64_t bits = 0; bits < (1ull << 32); bits += 4093) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(bits));
    if (std::isnan(f)) continue;
    const auto ref = std::bit_cast<uint16_t>(static_cast<_Float16>(f));
    ASSERT_EQ(f32_to_f16(f), ref) << "f32 bits " << bits;
  }
}
#endif

TEST(Half, EveryBf16RoundTrips) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto b = static_cast<uint16_t>(i);
    const float f = bf16_to_f32(b);
    if (bf16_is_nan(b)) {
      EXPECT_TRUE(std::isnan(f)) << i;
      EXPECT_TRUE(bf16_is_nan(f32_to_bf16(f))) << i;
      continue;
    }
    ASSERT_EQ(f32_to_bf16(f), b) << "bf16 bits " << i;
  }
}

TEST(Half, F32ToBf16RoundsToNearestEven) {
  for (uint32_t sign : {0u, 0x8000u}) {
    for (uint32_t i = 0; i < 0x7f7f; ++i) {  // adjacent finite pairs, hi at most the largest finite
      const auto lo = static_cast<uint16_t>(sign | i), hi = static_cast<uint16_t>(sign | (i + 1));
      const double a = bf16_to_f32(lo), b = bf16_to_f32(hi);
      const float mid = static_cast<float>((a + b) / 2);
      ASSERT_EQ(double(mid), (a + b) / 2);
      ASSERT_EQ(f32_to_bf16(mid), (i & 1u) ? hi : lo) << i;
      ASSERT_EQ(f32_to_bf16(std::nextafter(mid, static_cast<float>(a))), lo) << i;
      ASSERT_EQ(f32_to_bf16(std::nextafter(mid, static_cast<float>(b))), hi) << i;
    }
  }
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to infinity
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_TRUE(bf16_is_nan(f32_to_bf16(std::bit_cast<float>(0x7f800001u))));
  EXPECT_TRUE(bf16_is_nan(f32_to_bf16(std::bit_cast<float>(0xffffffffu))));
}

}  // namespace
}  // namespace kvz::test
