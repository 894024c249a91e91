// SharedKv: views that share a context's blocks hold exactly the context's rows plus their own,
// never change the context or each other, take device memory for their own rows only, and give
// it back when released; on the CPU backend and on Vulkan (lavapipe in CI) (tests/kvzip).
#include "kvzip/kv_share.h"

#include <algorithm>

#include "tests/kvzip/kv_util.h"

namespace kvz::test {
namespace {

constexpr int kL = 2, kH = 4, kD = 8;
constexpr int64_t kB = kKvBlockTokens;
KvCacheConfig config() { return {kL, kH, kD, {}}; }
int64_t blocks_for(int64_t rows) { return (rows + kB - 1) / kB; }

// Positions each (layer, head) holds.
using Rows = std::vector<std::vector<std::vector<int32_t>>>;

Rows dense(int32_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  return Rows(kL, std::vector<std::vector<int32_t>>(kH, p));
}

Rows appended(Rows m, int32_t pos0, int n) {
  for (auto& l : m)
    for (auto& h : l)
      for (int i = 0; i < n; ++i) h.push_back(pos0 + i);
  return m;
}

// Every head of `c` holds exactly `m`'s rows, read through the cache's bookkeeping and through
// its index tensors.
void expect_rows(Device& dev, const KvCache& c, const Rows& m) {
  for (int il = 0; il < kL; ++il) {
    auto rows = c.read_layer(il);
    auto via = read_via_view(dev, c, il);
    for (int ih = 0; ih < kH; ++ih) {
      SCOPED_TRACE(::testing::Message() << "layer " << il << " head " << ih);
      HeadRows want = expected_rows(il, ih, kD, m[il][ih]);
      EXPECT_TRUE(same_rows(rows[ih], want));
      EXPECT_TRUE(same_rows(via[ih], want));
    }
  }
}

// A context of n dense rows, compacted to a ragged subset when `ragged` (a head with no rows, a
// head with all, the others partial blocks of different fill).
std::unique_ptr<KvCache> context(Device& dev, int32_t n, bool ragged, Rows& m) {
  auto c = std::make_unique<KvCache>(dev, config());
  append_tokens(dev, *c, 0, n);
  m = dense(n);
  if (!ragged) return c;
  KeepSet keep;
  keep.rows.resize(kL, std::vector<std::vector<int32_t>>(kH));
  for (int il = 0; il < kL; ++il)
    for (int ih = 0; ih < kH; ++ih)
      for (int32_t r = 0; r < n; ++r)
        if ((il == 0 && ih == 0) || (!(il == 1 && ih == 3) && (r * (ih + 2) + il) % 5 < 2))
          keep.rows[il][ih].push_back(r);
  Recorder rec(dev);
  c->compact(rec, keep);
  Rows kept(kL, std::vector<std::vector<int32_t>>(kH));
  for (int il = 0; il < kL; ++il)
    for (int ih = 0; ih < kH; ++ih)
      for (int32_t r : keep.rows[il][ih]) kept[il][ih].push_back(m[il][ih][r]);
  m = kept;
  return c;
}

class KvShareTest : public DeviceTest {};

void append(Device& dev, SharedKv::View& v, int32_t pos0, int n) {
  v.reserve(n);
  append_tokens(dev, v.cache(), pos0, n);
}

TEST_P(KvShareTest, ViewsHoldTheContextPlusTheirOwnRowsAndChangeNothingElse) {
  for (bool ragged : {false, true}) {
    SCOPED_TRACE(ragged ? "ragged context" : "dense context");
    Rows m;
    auto shared = SharedKv::make(context(*dev, 70, ragged, m));
    Recorder rec(*dev);
    auto a = shared->fork(rec);
    auto b = shared->fork(rec);
    expect_rows(*dev, a->cache(), m);
    // Appends of different lengths, one token at a time and in chunks, interleaved.
    append(*dev, *a, 70, 5);
    append(*dev, *b, 70, 40);
    for (int i = 0; i < 30; ++i) append(*dev, *a, 75 + i, 1);
    expect_rows(*dev, shared->base(), m);
    expect_rows(*dev, a->cache(), appended(m, 70, 35));
    expect_rows(*dev, b->cache(), appended(m, 70, 40));
    // A view made after others appended starts from the context alone.
    auto c = shared->fork(rec);
    expect_rows(*dev, c->cache(), m);
    a.reset();
    append(*dev, *c, 70, 50);
    expect_rows(*dev, b->cache(), appended(m, 70, 40));
    expect_rows(*dev, c->cache(), appended(m, 70, 50));
    expect_rows(*dev, shared->base(), m);
  }
}

TEST_P(KvShareTest, AViewsMemoryIsItsOwnRowsWhateverTheContextLength) {
  // Two contexts with the same partial last block (6 rows), 70 and 70 + 5 x 32 rows long.
  Rows ms, ml;
  auto small = SharedKv::make(context(*dev, 70, false, ms));
  auto large = SharedKv::make(context(*dev, 230, false, ml));
  Recorder rec(*dev);
  auto vs = small->fork(rec), vl = large->fork(rec);
  const size_t block_bytes = kB * (2 * 2 * kD + 4);  // f16 K and V rows, an i32 position
  int done = 0;
  for (int n : {1, 26, 27, 100}) {
    SCOPED_TRACE(::testing::Message() << n << " own tokens");
    append(*dev, *vs, 70 + done, n - done);
    append(*dev, *vl, 230 + done, n - done);
    done = n;
    // Own blocks: the copied partial block and the appended rows after it, on every head.
    const int64_t own = kL * kH * blocks_for(6 + n);
    EXPECT_EQ(vs->own_blocks(), own);
    EXPECT_EQ(vl->own_blocks(), own);
    // Bytes: those blocks plus the view's index buffers (block tables, lengths, slots).
    for (const auto* v : {vs.get(), vl.get()}) {
      EXPECT_GE(v->own_bytes(), static_cast<size_t>(own) * block_bytes);
      EXPECT_LE(v->own_bytes(), static_cast<size_t>(own) * block_bytes + 4096);
    }
  }
  expect_rows(*dev, vl->cache(), appended(ml, 230, 100));
  expect_rows(*dev, vs->cache(), appended(ms, 70, 100));
  // A full copy (KvCache::clone) takes at least the context's rows.
  auto copy = large->base().clone(rec);
  EXPECT_GE(copy->bytes_allocated(), large->base().bytes_in_use());
}

TEST_P(KvShareTest, ReleasedViewsGiveTheirBlocksBack) {
  Rows m;
  auto shared = SharedKv::make(context(*dev, 70, true, m));
  Recorder rec(*dev);
  {
    auto v = shared->fork(rec);
    append(*dev, *v, 70, 200);  // grows the context's pools
  }
  const size_t grown = shared->base().bytes_allocated();
  EXPECT_EQ(shared->views(), 0);
  // The same work again reuses the returned blocks: the pools do not grow.
  for (int i = 0; i < 3; ++i) {
    auto v = shared->fork(rec);
    append(*dev, *v, 70, 200);
    expect_rows(*dev, v->cache(), appended(m, 70, 200));
  }
  EXPECT_EQ(shared->base().bytes_allocated(), grown);
  expect_rows(*dev, shared->base(), m);
}

TEST_P(KvShareTest, PoolGrowthWhileViewsLiveKeepsEveryViewIntact) {
  Rows m;
  auto shared = SharedKv::make(context(*dev, 45, false, m));
  Recorder rec(*dev);
  std::vector<std::unique_ptr<SharedKv::View>> views;
  const size_t before = shared->base().bytes_allocated();
  for (int i = 0; i < 8; ++i) {
    views.push_back(shared->fork(rec));
    append(*dev, *views.back(), 45, 10 + 20 * i);
  }
  EXPECT_GT(shared->base().bytes_allocated(), before);  // the pools were reallocated
  for (int i = 0; i < 8; ++i) expect_rows(*dev, views[i]->cache(), appended(m, 45, 10 + 20 * i));
  expect_rows(*dev, shared->base(), m);
}

TEST_P(KvShareTest, AnUnreservedAppendMakesTheViewPrivateAndHarmsNothing) {
  Rows m;
  auto shared = SharedKv::make(context(*dev, 45, true, m));
  Recorder rec(*dev);
  auto a = shared->fork(rec), b = shared->fork(rec);
  append_tokens(*dev, a->cache(), 45, 300);  // past the spare blocks, without reserve()
  for (int i = 0; i < 4; ++i) {  // b's reserved appends grow the context's pools meanwhile
    append(*dev, *b, 45 + 100 * i, 100);
  }
  expect_rows(*dev, a->cache(), appended(m, 45, 300));
  expect_rows(*dev, b->cache(), appended(m, 45, 400));
  a.reset();
  b.reset();
  expect_rows(*dev, shared->base(), m);
  auto c = shared->fork(rec);
  append(*dev, *c, 45, 300);
  expect_rows(*dev, c->cache(), appended(m, 45, 300));
}

INSTANTIATE_TEST_SUITE_P(Backends, KvShareTest, ::testing::Values("cpu", "vulkan"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace kvz::test
