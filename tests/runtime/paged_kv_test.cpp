// GPU-vs-reference tests for the paged KV ops kv_write and kv_gather, and kv_write with RoPE
// fused in against rope() then kv_write (tests/runtime).
#include "runtime/ops/paged_kv.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <tuple>

#include "runtime/cpu/half.h"
#include "runtime/ops/rope.h"
#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

// (head_dim, n_kv_heads, n_tokens)
using Shape = std::tuple<int, int, int>;

class PagedKvTest : public VkTest, public ::testing::WithParamInterface<Shape> {};

std::vector<uint16_t> random_bits(Rng& rng, size_t n) {
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = static_cast<uint16_t>(rng.next());
  return v;
}

std::vector<int32_t> random_i32(Rng& rng, size_t n) {
  std::vector<int32_t> v(n);
  for (auto& x : v) x = static_cast<int32_t>(rng.next() % 100000);
  return v;
}

template <class T>
void shuffle(Rng& rng, std::vector<T>& v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.next() % i]);
}

// Ragged per-head layout as the header describes: head h already holds lens[h] rows and owns the
// blocks in its (shuffled) block table; row t goes to slot table[t / 32] * 32 + t % 32.
struct Layout {
  int n_blocks = 0;
  std::vector<std::vector<int32_t>> tables;
  std::vector<int32_t> lens;
  int32_t slot(int h, int t) const {
    return tables[h][t / kKvBlockTokens] * kKvBlockTokens + t % kKvBlockTokens;
  }
};

Layout make_layout(Rng& rng, int n_kv_heads, int rows_per_head) {
  Layout l;
  std::vector<int> need(n_kv_heads);
  for (int h = 0; h < n_kv_heads; ++h) {
    l.lens.push_back(static_cast<int32_t>(rng.next() % 70));
    need[h] = (l.lens[h] + rows_per_head + kKvBlockTokens - 1) / kKvBlockTokens;
    l.n_blocks += need[h];
  }
  l.n_blocks += 3;  // spare blocks stay untouched
  std::vector<int32_t> blocks(l.n_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  shuffle(rng, blocks);
  size_t next = 0;
  for (int h = 0; h < n_kv_heads; ++h)
    l.tables.emplace_back(blocks.begin() + next, blocks.begin() + next + need[h]), next += need[h];
  return l;
}

struct Pools {
  Tensor k, v, pos;
};

Pools upload_pools(Device& dev, std::vector<Buffer>& keep, int n_blocks, int head_dim,
                   const std::vector<uint16_t>& k, const std::vector<uint16_t>& v,
                   const std::vector<int32_t>& pos) {
  const int64_t nb = n_blocks, hd = head_dim;
  return {upload(dev, keep, DType::kF16, {nb, kKvBlockTokens, hd}, k.data()),
          upload(dev, keep, DType::kF16, {nb, kKvBlockTokens, hd}, v.data()),
          upload(dev, keep, DType::kI32, {nb, kKvBlockTokens}, pos.data())};
}

void expect_same_pools(Device& gpu, const Pools& g, Device& cpu, const Pools& c) {
  EXPECT_TRUE(download_as<uint16_t>(gpu, g.k) == download_as<uint16_t>(cpu, c.k)) << "K differs";
  EXPECT_TRUE(download_as<uint16_t>(gpu, g.v) == download_as<uint16_t>(cpu, c.v)) << "V differs";
  EXPECT_TRUE(download_as<int32_t>(gpu, g.pos) == download_as<int32_t>(cpu, c.pos))
      << "positions differ";
}

TEST_P(PagedKvTest, WriteMatchesReference) {
  const auto [head_dim, n_kv_heads, n_tokens] = GetParam();
  Rng rng(head_dim * 131 + n_kv_heads * 7 + n_tokens);
  const Layout l = make_layout(rng, n_kv_heads, n_tokens);
  const size_t n_slots = size_t(l.n_blocks) * kKvBlockTokens;
  const auto k0 = random_bits(rng, n_slots * head_dim), v0 = random_bits(rng, n_slots * head_dim);
  const auto pos0 = random_i32(rng, n_slots);
  const int64_t nt = n_tokens, nh = n_kv_heads, hd = head_dim;
  auto k_new = rng.uniform_vec(nt * nh * hd, -3, 3), v_new = rng.uniform_vec(nt * nh * hd, -3, 3);
  // Values whose rounding is easy to get wrong: ties, subnormals, overflow, signed zero.
  const float special[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f,
                           0x1p-25f,        3 * 0x1p-25f,
                           -0x1p-20f,       65519.0f,
                           65520.0f,        -1e6f,
                           -0.0f,           6e-8f};
  for (size_t i = 0; i < std::size(special); ++i) k_new[i * 7 % k_new.size()] = special[i];
  std::vector<int32_t> pos_new(n_tokens), dst(n_kv_heads * n_tokens);
  for (int t = 0; t < n_tokens; ++t) pos_new[t] = 1000 + t;
  for (int h = 0; h < n_kv_heads; ++h)
    for (int t = 0; t < n_tokens; ++t) dst[h * n_tokens + t] = l.slot(h, l.lens[h] + t);

  Pools out[2];
  std::vector<Buffer> keep[2];
  Device* devs[2] = {gpu, cpu};
  for (int i = 0; i < 2; ++i) {
    Device& dev = *devs[i];
    out[i] = upload_pools(dev, keep[i], l.n_blocks, head_dim, k0, v0, pos0);
    KvWriteArgs a;
    a.k_new = upload_f32(dev, keep[i], {nt, nh, hd}, k_new);
    a.v_new = upload_f32(dev, keep[i], {nt, nh, hd}, v_new);
    a.pos_new = upload(dev, keep[i], DType::kI32, {nt}, pos_new.data());
    a.dst_slot = upload(dev, keep[i], DType::kI32, {nh, nt}, dst.data());
    a.k_pool = out[i].k, a.v_pool = out[i].v, a.pos_pool = out[i].pos;
    Recorder rec(dev);
    kv_write(rec, a);
    rec.finish();
  }
  expect_same_pools(*gpu, out[0], *cpu, out[1]);
  // Spot-check the reference itself: row (t, h) landed, correctly rounded, at its slot.
  const auto kc = download_as<uint16_t>(*cpu, out[1].k);
  const auto pc = download_as<int32_t>(*cpu, out[1].pos);
  const int t = n_tokens - 1, h = n_kv_heads - 1;
  const int32_t s = l.slot(h, l.lens[h] + t);
  EXPECT_EQ(pc[s], pos_new[t]);
  for (int d = 0; d < head_dim; ++d)
    ASSERT_EQ(kc[size_t(s) * head_dim + d], cpu::f32_to_f16(k_new[(t * nh + h) * hd + d]));
  EXPECT_EQ(cpu::f32_to_f16(65520.0f), 0x7c00);
}

TEST_P(PagedKvTest, GatherMatchesReference) {
  const auto [head_dim, n_kv_heads, n_tokens] = GetParam();
  Rng rng(head_dim * 17 + n_kv_heads * 5 + n_tokens * 3);
  const Layout src_l = make_layout(rng, n_kv_heads, n_tokens);
  const int64_t src_slots = int64_t(src_l.n_blocks) * kKvBlockTokens;
  const auto ks = random_bits(rng, src_slots * head_dim),
             vs = random_bits(rng, src_slots * head_dim);
  const auto ps = random_i32(rng, src_slots);
  // Compaction-like: keep a random subset of each head's rows, in order, into a fresh layout.
  // Three cases: nothing kept, a ragged subset, every row kept.
  for (int mode = 0; mode < 3; ++mode) {
    std::vector<int32_t> src, dst;
    std::vector<int> kept(n_kv_heads, 0);
    for (int h = 0; h < n_kv_heads; ++h)
      for (int t = 0; t < src_l.lens[h] + n_tokens; ++t)
        if (mode == 2 || (mode == 1 && rng.next() % 3 != 0))
          src.push_back(src_l.slot(h, t)), ++kept[h];
    const Layout dst_l = make_layout(rng, n_kv_heads, *std::max_element(kept.begin(), kept.end()));
    for (int h = 0; h < n_kv_heads; ++h)
      for (int t = 0; t < kept[h]; ++t) dst.push_back(dst_l.slot(h, t));
    const int64_t dst_slots = int64_t(dst_l.n_blocks) * kKvBlockTokens;
    const auto kd = random_bits(rng, dst_slots * head_dim),
               vd = random_bits(rng, dst_slots * head_dim);
    const auto pd = random_i32(rng, dst_slots);
    const int64_t n = static_cast<int64_t>(src.size());
    src.push_back(0), dst.push_back(0);  // keeps the slot buffers non-empty when n == 0

    Pools out[2];
    std::vector<Buffer> keep[2];
    Device* devs[2] = {gpu, cpu};
    for (int i = 0; i < 2; ++i) {
      Device& dev = *devs[i];
      Pools in = upload_pools(dev, keep[i], src_l.n_blocks, head_dim, ks, vs, ps);
      out[i] = upload_pools(dev, keep[i], dst_l.n_blocks, head_dim, kd, vd, pd);
      KvGatherArgs a{upload(dev, keep[i], DType::kI32, {n + 1}, src.data()).slice(0, n),
                     upload(dev, keep[i], DType::kI32, {n + 1}, dst.data()).slice(0, n),
                     in.k,
                     in.v,
                     in.pos,
                     out[i].k,
                     out[i].v,
                     out[i].pos};
      Recorder rec(dev);
      kv_gather(rec, a);
      rec.finish();
    }
    SCOPED_TRACE(::testing::Message() << "mode " << mode << ", rows " << n);
    expect_same_pools(*gpu, out[0], *cpu, out[1]);
    if (mode == 0) {
      EXPECT_TRUE(download_as<uint16_t>(*cpu, out[1].k) == kd) << "gather of 0 rows wrote";
    } else {
      const auto pc = download_as<int32_t>(*cpu, out[1].pos);
      EXPECT_EQ(pc[dst[n - 1]], ps[src[n - 1]]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PagedKvTest,
                         ::testing::Combine(::testing::Values(64, 128, 256),
                                            ::testing::Values(1, 4, 8),
                                            ::testing::Values(1, 33, 100)));

// (head_dim, n_heads, n_kv_heads, style, partial rotation, n_tokens)
using RopeShape = std::tuple<int, int, int, RopeStyle, bool, int>;
class KvWriteRopeTest : public VkTest, public ::testing::WithParamInterface<RopeShape> {};

// The forward pass's fused step, rope(q) beside kv_write with rope, against the separate one,
// rope(q), rope(k), then kv_write: the same q and pools, bit for bit, on each backend.
TEST_P(KvWriteRopeTest, FusedEqualsRopeThenWrite) {
  const auto [head_dim, n_heads, n_kv_heads, style, partial, n_tokens] = GetParam();
  Rng rng(head_dim * 31 + n_heads * 7 + n_kv_heads * 3 + n_tokens + partial);
  const Layout l = make_layout(rng, n_kv_heads, n_tokens);
  const size_t n_slots = size_t(l.n_blocks) * kKvBlockTokens;
  const auto k0 = random_bits(rng, n_slots * head_dim), v0 = random_bits(rng, n_slots * head_dim);
  const auto pos0 = random_i32(rng, n_slots);
  const int64_t nt = n_tokens, nq = n_heads, nh = n_kv_heads, hd = head_dim;
  const int rot_dims = partial ? head_dim / 4 * 3 / 2 * 2 : head_dim;  // 48 of 64, 96 of 128 ...
  const auto q = rng.uniform_vec(nt * nq * hd, -3, 3), k = rng.uniform_vec(nt * nh * hd, -3, 3),
             v = rng.uniform_vec(nt * nh * hd, -3, 3);
  // Positions: small ones, and large ones that take the exact range reduction's integer path.
  std::vector<int32_t> pos(n_tokens), dst(n_kv_heads * n_tokens);
  for (int t = 0; t < n_tokens; ++t) pos[t] = t % 2 ? t : static_cast<int32_t>(rng.next() % 200000);
  for (int h = 0; h < n_kv_heads; ++h)
    for (int t = 0; t < n_tokens; ++t) dst[h * n_tokens + t] = l.slot(h, l.lens[h] + t);
  RopeScaling sc{RopeScaling::Type::kYarn, 4.0f};
  const auto freqs = rope_inv_freqs(1e6f, rot_dims, sc);

  for (Device* dev : {gpu, cpu}) {
    SCOPED_TRACE(dev == gpu ? "vulkan" : "cpu");
    std::vector<Buffer> keep;
    Pools out[2];
    Tensor q_out[2], k_new[2];
    for (int fused = 0; fused < 2; ++fused) {
      out[fused] = upload_pools(*dev, keep, l.n_blocks, head_dim, k0, v0, pos0);
      RopeArgs ra;
      ra.x = q_out[fused] = upload_f32(*dev, keep, {nt, nq, hd}, q);
      ra.pos = upload(*dev, keep, DType::kI32, {nt}, pos.data());
      ra.inv_freq = upload_f32(*dev, keep, {rot_dims / 2}, freqs);
      ra.style = style;
      ra.rot_dims = partial ? rot_dims : 0;
      ra.attn_factor = rope_attn_factor(sc);
      KvWriteArgs a;
      a.k_new = k_new[fused] = upload_f32(*dev, keep, {nt, nh, hd}, k);
      a.v_new = upload_f32(*dev, keep, {nt, nh, hd}, v);
      a.pos_new = ra.pos;
      a.dst_slot = upload(*dev, keep, DType::kI32, {nh, nt}, dst.data());
      a.k_pool = out[fused].k, a.v_pool = out[fused].v, a.pos_pool = out[fused].pos;
      Recorder rec(*dev);
      if (fused) {
        a.rope = ra;  // q's rotation
        Recorder::Concurrent group(rec);
        rope(rec, ra);
        kv_write(rec, a);
      } else {
        {
          Recorder::Concurrent group(rec);
          rope(rec, ra);
          ra.x = a.k_new;
          rope(rec, ra);
        }
        kv_write(rec, a);
      }
      rec.finish();
    }
    expect_same_pools(*dev, out[0], *dev, out[1]);
    EXPECT_TRUE(download_as<uint32_t>(*dev, q_out[0]) == download_as<uint32_t>(*dev, q_out[1]))
        << "q differs";
    EXPECT_TRUE(download_f32(*dev, k_new[1]) == k) << "the fused kv_write modified k_new";
    // rope() did rotate k in the separate path, so equal pools mean the fused one rotated too.
    EXPECT_FALSE(download_f32(*dev, k_new[0]) == k);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, KvWriteRopeTest,
                         ::testing::Combine(::testing::Values(64, 128, 256),
                                            ::testing::Values(8),        // n_heads
                                            ::testing::Values(1, 2, 8),  // n_kv_heads: GQA, MHA
                                            ::testing::Values(RopeStyle::kNormal, RopeStyle::kNeox),
                                            ::testing::Bool(), ::testing::Values(1, 5)));

}  // namespace
}  // namespace kvz::test
