// KvCache: ragged append, compaction, clone, truncate and memory accounting, on the CPU backend
// and on Vulkan (lavapipe in CI) through the real kv_write / kv_gather ops (tests/kvzip).
#include "kvzip/kv_cache.h"

#include <algorithm>
#include <set>

#include "tests/kvzip/kv_util.h"

namespace kvz::test {
namespace {

constexpr int kL = 2, kH = 4, kD = 8;
KvCacheConfig config() { return {kL, kH, kD, {}}; }

// Host model of the cache: positions held by each (layer, head).
using Model = std::vector<std::vector<std::vector<int32_t>>>;

Model dense_model(int32_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  return Model(kL, std::vector<std::vector<int32_t>>(kH, p));
}

void model_append(Model& m, int32_t pos0, int n) {
  for (auto& l : m)
    for (auto& h : l)
      for (int i = 0; i < n; ++i) h.push_back(pos0 + i);
}

// Every head matches the model through read_layer, the LayerView index, positions() and rows().
void expect_matches(Device& dev, const KvCache& c, const Model& m) {
  for (int il = 0; il < kL; ++il) {
    auto rows = c.read_layer(il);
    auto view = read_via_view(dev, c, il);
    for (int ih = 0; ih < kH; ++ih) {
      SCOPED_TRACE(::testing::Message() << "layer " << il << " head " << ih);
      HeadRows want = expected_rows(il, ih, kD, m[il][ih]);
      EXPECT_TRUE(same_rows(rows[ih], want));
      EXPECT_TRUE(same_rows(view[ih], want));
      EXPECT_EQ(c.positions(il, ih), m[il][ih]);
      EXPECT_EQ(c.rows(il, ih), static_cast<int64_t>(m[il][ih].size()));
    }
  }
}

// Keeps a ragged, head-dependent subset: head ih of layer il keeps rows with (row * (ih + 2) + il)
// % 5 < 2, except head 3 of layer 1, which keeps nothing, and head 0 of layer 0, which keeps all.
KeepSet ragged_keep(const Model& m) {
  KeepSet k;
  k.rows.resize(kL, std::vector<std::vector<int32_t>>(kH));
  for (int il = 0; il < kL; ++il)
    for (int ih = 0; ih < kH; ++ih)
      for (int32_t r = 0; r < static_cast<int32_t>(m[il][ih].size()); ++r) {
        bool keep = (il == 0 && ih == 0) || (!(il == 1 && ih == 3) && (r * (ih + 2) + il) % 5 < 2);
        if (keep) k.rows[il][ih].push_back(r);
      }
  return k;
}

Model apply_keep(const Model& m, const KeepSet& k) {
  Model out(kL, std::vector<std::vector<int32_t>>(kH));
  for (int il = 0; il < kL; ++il)
    for (int ih = 0; ih < kH; ++ih)
      for (int32_t r : k.rows[il][ih]) out[il][ih].push_back(m[il][ih][r]);
  return out;
}

TEST_P(DeviceTest, AppendAcrossBlockBoundariesWithRaggedHeads) {
  KvCache c(*dev, config());
  Model m(kL, std::vector<std::vector<int32_t>>(kH));
  // 31, 1, 1, 33, 64 tokens: crosses block boundaries at 32, 64, 128 in every way.
  int32_t pos = 0;
  for (int n : {31, 1, 1, 33, 64}) {
    append_tokens(*dev, c, pos, n);
    model_append(m, pos, n);
    pos += n;
    expect_matches(*dev, c, m);
  }
  Recorder rec(*dev);
  KeepSet keep = ragged_keep(m);
  c.compact(rec, keep);
  m = apply_keep(m, keep);
  for (int n : {1, 30, 2, 40}) {  // each head crosses its own boundaries at different steps
    append_tokens(*dev, c, pos, n);
    model_append(m, pos, n);
    pos += n;
    expect_matches(*dev, c, m);
  }
}

TEST_P(DeviceTest, AppendIsAmortisedConstant) {
  KvCache c(*dev, config());
  std::set<size_t> sizes{c.bytes_allocated()};
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    append_tokens(*dev, c, i, 1);
    sizes.insert(c.bytes_allocated());
  }
  // Geometric pool growth: a handful of reallocations for 2000 appends (x1.5 per growth from 16
  // blocks to 252 needs ~7), not one per block.
  EXPECT_LE(sizes.size(), 16u) << "pool reallocations";
  // Allocation stays within a constant factor of what is used.
  EXPECT_LE(c.bytes_allocated(), 2 * c.bytes_in_use() + 4096);
  // Dropped blocks are reused: dropping and re-appending 100 tokens allocates nothing (after a
  // first round, which sizes the 100-token slot list).
  c.drop_last(100);
  append_tokens(*dev, c, n - 100, 100);
  const size_t before = c.bytes_allocated();
  for (int r = 0; r < 5; ++r) {
    c.drop_last(100);
    append_tokens(*dev, c, n - 100, 100);
  }
  EXPECT_EQ(c.bytes_allocated(), before);
  expect_matches(*dev, c, dense_model(n));
}

TEST_P(DeviceTest, CompactKeepsExactlyTheKeepSetInOrderWithOriginalPositions) {
  KvCache c(*dev, config());
  append_tokens(*dev, c, 0, 100);
  Model m = dense_model(100);
  Recorder rec(*dev);
  KeepSet keep = ragged_keep(m);
  c.compact(rec, keep);
  Model want = apply_keep(m, keep);
  expect_matches(*dev, c, want);
  // Positions are never renumbered: head 1 of layer 0 keeps rows with (3r) % 5 < 2 -> 0, 2, 5, ...
  EXPECT_EQ(c.positions(0, 1)[2], 5);
  // A second compaction of the compacted cache composes.
  KeepSet keep2;
  keep2.rows.resize(kL, std::vector<std::vector<int32_t>>(kH));
  for (int il = 0; il < kL; ++il)
    for (int ih = 0; ih < kH; ++ih)
      for (int32_t r = 0; r < static_cast<int32_t>(want[il][ih].size()); r += 2)
        keep2.rows[il][ih].push_back(r);
  c.compact(rec, keep2);
  expect_matches(*dev, c, apply_keep(want, keep2));
}

TEST_P(DeviceTest, BytesInUseProportionalToKeptRows) {
  KvCache c(*dev, config());
  append_tokens(*dev, c, 0, 300);
  const size_t row_bytes = 2 * 2 * kD + 4, block_bytes = kKvBlockTokens * row_bytes;
  const size_t full = c.bytes_in_use();
  EXPECT_GE(full, size_t{300} * kL * kH * row_bytes);
  Recorder rec(*dev);
  KeepSet keep = ragged_keep(dense_model(300));
  c.compact(rec, keep);
  size_t kept = 0;
  int64_t max_blocks = 0;
  for (int il = 0; il < kL; ++il)
    for (int ih = 0; ih < kH; ++ih) {
      kept += keep.rows[il][ih].size();
      max_blocks = std::max<int64_t>(max_blocks, (keep.rows[il][ih].size() + 31) / 32);
    }
  const size_t index_max = static_cast<size_t>(kL * kH * (max_blocks + 1)) * 4;
  EXPECT_GE(c.bytes_in_use(), kept * row_bytes);
  EXPECT_LE(c.bytes_in_use(), kept * row_bytes + kL * kH * block_bytes + index_max);
  EXPECT_LT(c.bytes_in_use(), full);
  // Allocated device memory shrank too (right-sized pools plus 2 spare blocks per head).
  EXPECT_LE(c.bytes_allocated(), kept * row_bytes + 3 * kL * kH * block_bytes + 4096);
  EXPECT_EQ(c.full_bytes(300), static_cast<size_t>(kL * kH * 10) * block_bytes);
}

TEST_P(DeviceTest, CloneIsIndependent) {
  KvCache c(*dev, config());
  append_tokens(*dev, c, 0, 70);
  Recorder rec(*dev);
  auto copy = c.clone(rec);
  Model m = dense_model(70);
  expect_matches(*dev, *copy, m);
  // Mutate the original: compact + append; the clone must not change.
  KeepSet keep = ragged_keep(m);
  c.compact(rec, keep);
  Model mc = apply_keep(m, keep);
  append_tokens(*dev, c, 70, 5);
  model_append(mc, 70, 5);
  expect_matches(*dev, *copy, m);
  expect_matches(*dev, c, mc);
  // Mutate the clone; the original must not change.
  append_tokens(*dev, *copy, 70, 40);
  model_append(m, 70, 40);
  expect_matches(*dev, *copy, m);
  expect_matches(*dev, c, mc);
}

TEST_P(DeviceTest, TruncateDropsQueryAndAnswerOfRaggedHeads) {
  KvCache c(*dev, config());
  append_tokens(*dev, c, 0, 90);
  Recorder rec(*dev);
  KeepSet keep = ragged_keep(dense_model(90));
  c.compact(rec, keep);
  Model m = apply_keep(dense_model(90), keep);
  const size_t in_use = c.bytes_in_use();
  // A query + answer of 45 tokens at positions 90.., then truncate back to N = 90.
  append_tokens(*dev, c, 90, 40);
  append_tokens(*dev, c, 130, 5);
  c.truncate(90);
  expect_matches(*dev, c, m);
  EXPECT_EQ(c.bytes_in_use(), in_use);
  // The next query continues at position 90 again.
  append_tokens(*dev, c, 90, 3);
  model_append(m, 90, 3);
  expect_matches(*dev, c, m);
  // drop_last removes the same number of rows from every head.
  c.drop_last(3);
  for (auto& l : m)
    for (auto& h : l) h.resize(h.size() - 3);
  expect_matches(*dev, c, m);
  // Truncating below the context drops context rows by position (not by row count).
  c.truncate(50);
  for (auto& l : m)
    for (auto& h : l) h.erase(std::lower_bound(h.begin(), h.end(), 50), h.end());
  expect_matches(*dev, c, m);
}

TEST_P(DeviceTest, FromRowsRoundTrip) {
  KvCache c(*dev, config());
  append_tokens(*dev, c, 0, 77);
  Recorder rec(*dev);
  KeepSet keep = ragged_keep(dense_model(77));
  c.compact(rec, keep);
  std::vector<std::vector<HeadRows>> rows;
  for (int il = 0; il < kL; ++il) rows.push_back(c.read_layer(il));
  auto d = KvCache::from_rows(*dev, config(), rows);
  expect_matches(*dev, *d, apply_keep(dense_model(77), keep));
  append_tokens(*dev, *d, 77, 33);  // a loaded cache accepts appends
  Model m = apply_keep(dense_model(77), keep);
  model_append(m, 77, 33);
  expect_matches(*dev, *d, m);
}

TEST_P(DeviceTest, ReserveAvoidsGrowth) {
  KvCache c(*dev, config(), 500);
  append_tokens(*dev, c, 0, 100);  // sizes the 100-token slot list
  const size_t before = c.bytes_allocated();
  for (int i = 1; i < 5; ++i) append_tokens(*dev, c, i * 100, 100);
  EXPECT_EQ(c.bytes_allocated(), before);
  expect_matches(*dev, c, dense_model(500));
  // Without the reservation the same appends grow the pools.
  KvCache g(*dev, config());
  append_tokens(*dev, g, 0, 100);
  const size_t g_before = g.bytes_allocated();
  for (int i = 1; i < 5; ++i) append_tokens(*dev, g, i * 100, 100);
  EXPECT_GT(g.bytes_allocated(), g_before);
}

// Each layer's K/V pool is one storage-buffer binding. With maxStorageBufferRange lowered to
// 64 KiB (512-byte blocks: 128 blocks, 1024 tokens on each of the 4 heads) an append past the
// limit throws DeviceError before changing any layer, and appends up to it still work.
TEST(KvCacheLimitTest, AppendPastBindingLimitThrowsAndLeavesCacheIntact) {
  Device* dev = vk_device_with_range(64 << 10);
  if (!dev) GTEST_SKIP() << "no Vulkan device";
  const uint64_t validation_before = dev->validation_messages();
  KvCache c(*dev, config());
  EXPECT_EQ(c.max_pool_blocks(), 128);
  for (int i = 0; i < 10; ++i) append_tokens(*dev, c, i * 100, 100);
  EXPECT_THROW(append_tokens(*dev, c, 1000, 100), DeviceError);
  expect_matches(*dev, c, dense_model(1000));
  append_tokens(*dev, c, 1000, 24);  // exactly the limit
  expect_matches(*dev, c, dense_model(1024));
  EXPECT_THROW(append_tokens(*dev, c, 1024, 1), DeviceError);
  EXPECT_EQ(dev->validation_messages(), validation_before);
}

// LLaMA-3.1-8B shapes (8 KV heads x 128, f16) under lavapipe's 128 MiB: 64K tokens fit one
// layer's pool exactly, a 128K context is refused up front with the cause in the message.
TEST(KvCacheLimitTest, LongContextRefusedUpFrontNamingTheLimit) {
  Device* dev = vk_device_with_range(128 << 20);
  if (!dev) GTEST_SKIP() << "no Vulkan device";
  KvCache c(*dev, {1, 8, 128, {}});
  EXPECT_NO_THROW(c.check_capacity(65536));
  EXPECT_THROW(c.check_capacity(65536, 1), DeviceError);
  try {
    c.check_capacity(131072);
    ADD_FAILURE() << "a 128K context should not fit";
  } catch (const DeviceError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("context 131072 needs a 268435456-byte KV buffer"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("over maxStorageBufferRange 134217728"), std::string::npos) << msg;
    EXPECT_NE(msg.find("use a shorter context"), std::string::npos) << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceTest, ::testing::Values("cpu", "vulkan"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace kvz::test
