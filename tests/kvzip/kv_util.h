// Helpers shared by the kvzip tests: a device per backend, appends through kv_write with K/V
// values derived from (layer, head, position), and an independent reader of the paged layout that
// goes through the LayerView index tensors rather than KvCache's own bookkeeping (tests/kvzip).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "kvzip/kv_cache.h"
#include "runtime/cpu/half.h"
#include "tests/common/test_device.h"

namespace kvz::test {

// Value of element d of the key (sign +) or value (sign -) of (layer, head, position): an integer
// below 2048, so f32 -> f16 is exact.
inline float kv_value(int il, int ih, int32_t pos, int d, float sign) {
  return sign * static_cast<float>((pos * 7 + ih * 131 + il * 57 + d * 3) % 2000);
}

// Appends tokens at positions pos0 .. pos0 + n - 1 to every head of every layer.
inline void append_tokens(Device& dev, KvCache& c, int32_t pos0, int n) {
  const KvCacheConfig& cfg = c.config();
  const int64_t H = cfg.n_kv_heads, hd = cfg.head_dim;
  std::vector<int32_t> pos(static_cast<size_t>(n));
  std::iota(pos.begin(), pos.end(), pos0);
  Recorder rec(dev);
  c.begin_append(n, pos);
  std::vector<Buffer> keep;
  for (int il = 0; il < cfg.n_layers; ++il) {
    std::vector<float> k(static_cast<size_t>(n * H * hd)), v(k.size());
    for (int t = 0; t < n; ++t)
      for (int64_t ih = 0; ih < H; ++ih)
        for (int64_t d = 0; d < hd; ++d) {
          size_t i = static_cast<size_t>((t * H + ih) * hd + d);
          k[i] = kv_value(il, static_cast<int>(ih), pos[t], static_cast<int>(d), 1.0f);
          v[i] = kv_value(il, static_cast<int>(ih), pos[t], static_cast<int>(d), -1.0f);
        }
    KvCache::LayerView lv = c.layer(il);
    kv_write(rec, {upload_f32(dev, keep, {n, H, hd}, k), upload_f32(dev, keep, {n, H, hd}, v),
                   upload(dev, keep, DType::kI32, {n}, pos.data()), c.dst_slots(il), lv.k_pool,
                   lv.v_pool, lv.pos_pool});
  }
  rec.finish();
}

// Rows of every head of layer il read through block_table/lens/pools of layer(il).
inline std::vector<HeadRows> read_via_view(Device& dev, const KvCache& c, int il) {
  KvCache::LayerView lv = c.layer(il);
  const int64_t H = c.config().n_kv_heads, hd = c.config().head_dim;
  auto table = download_as<int32_t>(dev, lv.block_table);
  auto lens = download_as<int32_t>(dev, lv.lens);
  auto k = download_as<uint16_t>(dev, lv.k_pool);
  auto v = download_as<uint16_t>(dev, lv.v_pool);
  auto pos = download_as<int32_t>(dev, lv.pos_pool);
  const int64_t stride = lv.block_table.dim(1), n_slots = lv.pos_pool.numel();
  std::vector<HeadRows> out(static_cast<size_t>(H));
  for (int64_t ih = 0; ih < H; ++ih)
    for (int64_t t = 0; t < lens[ih]; ++t) {
      EXPECT_LT(t / kKvBlockTokens, stride);
      const int64_t slot =
          table[ih * stride + t / kKvBlockTokens] * kKvBlockTokens + t % kKvBlockTokens;
      EXPECT_TRUE(slot >= 0 && slot < n_slots) << "slot " << slot;
      if (slot < 0 || slot >= n_slots) return out;
      out[ih].pos.push_back(pos[slot]);
      out[ih].k.insert(out[ih].k.end(), k.begin() + slot * hd, k.begin() + (slot + 1) * hd);
      out[ih].v.insert(out[ih].v.end(), v.begin() + slot * hd, v.begin() + (slot + 1) * hd);
    }
  return out;
}

// Expected rows of a head holding `positions` (values from kv_value).
inline HeadRows expected_rows(int il, int ih, int hd, const std::vector<int32_t>& positions) {
  HeadRows r;
  r.pos = positions;
  for (int32_t p : positions)
    for (int d = 0; d < hd; ++d) {
      r.k.push_back(cpu::f32_to_f16(kv_value(il, ih, p, d, 1.0f)));
      r.v.push_back(cpu::f32_to_f16(kv_value(il, ih, p, d, -1.0f)));
    }
  return r;
}

inline ::testing::AssertionResult same_rows(const HeadRows& got, const HeadRows& want) {
  if (got.pos != want.pos) {
    std::string g, w;
    for (int32_t p : got.pos) g += std::to_string(p) + " ";
    for (int32_t p : want.pos) w += std::to_string(p) + " ";
    return ::testing::AssertionFailure() << "positions differ:\n got  " << g << "\n want " << w;
  }
  if (got.k != want.k) return ::testing::AssertionFailure() << "keys differ";
  if (got.v != want.v) return ::testing::AssertionFailure() << "values differ";
  return ::testing::AssertionSuccess();
}

// Parameter of device-parameterised tests: "cpu" or "vulkan" (skipped without a Vulkan device;
// validation messages fail the test).
class DeviceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cpu") {
      dev = &cpu_device();
    } else {
      dev = vk_device();
      if (!dev) GTEST_SKIP() << "no Vulkan device";
      validation_before_ = dev->validation_messages();
    }
  }
  void TearDown() override {
    if (dev && GetParam() != "cpu") {
      EXPECT_EQ(dev->validation_messages(), validation_before_) << "validation layer messages";
    }
  }
  Device* dev = nullptr;
  uint64_t validation_before_ = 0;
};

}  // namespace kvz::test
