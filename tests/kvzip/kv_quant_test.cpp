// Quantised KV caches (q8_0 / q4_0 K and V): quantisation at append within the block bound,
// compaction carrying the stored rows, and attention / reconstruction scoring over them against
// the f16 cache, within error bounds derived from each row's block scales (tests/kvzip).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kvzip/kv_cache.h"
#include "runtime/kv_quant.h"
#include "runtime/ops/paged_attention.h"
#include "tests/kvzip/kv_util.h"

namespace kvz::test {
namespace {

constexpr int kH = 2, kGroup = 2, kD = 64;

// The f32 K or V values of every (layer 0) head and position: uniform in [-2, 2] with one larger
// channel per head, so that blocks get different scales.
struct Data {
  std::vector<float> k, v;  // [n_pos, kH, kD]
  float at(const std::vector<float>& x, int32_t pos, int h, int c) const {
    return x[(static_cast<size_t>(pos) * kH + h) * kD + c];
  }
};

Data make_data(int n_pos, uint64_t seed) {
  Rng rng(seed);
  Data d;
  d.k = rng.uniform_vec(static_cast<size_t>(n_pos) * kH * kD, -2.0f, 2.0f);
  d.v = rng.uniform_vec(d.k.size(), -2.0f, 2.0f);
  for (int p = 0; p < n_pos; ++p)
    for (int h = 0; h < kH; ++h) d.k[(static_cast<size_t>(p) * kH + h) * kD + 5 + h] *= 4.0f;
  return d;
}

// Appends positions [pos0, pos0 + n) of `data` to the one-layer cache c through kv_write.
void append(Device& dev, KvCache& c, const Data& data, int32_t pos0, int n) {
  std::vector<int32_t> pos(static_cast<size_t>(n));
  std::iota(pos.begin(), pos.end(), pos0);
  const size_t off = static_cast<size_t>(pos0) * kH * kD, len = static_cast<size_t>(n) * kH * kD;
  std::vector<float> k(data.k.begin() + off, data.k.begin() + off + len),
      v(data.v.begin() + off, data.v.begin() + off + len);
  Recorder rec(dev);
  c.begin_append(n, pos);
  std::vector<Buffer> keep;
  KvCache::LayerView lv = c.layer(0);
  kv_write(rec, {upload_f32(dev, keep, {n, kH, kD}, k), upload_f32(dev, keep, {n, kH, kD}, v),
                 upload(dev, keep, DType::kI32, {n}, pos.data()), c.dst_slots(0), lv.k_pool,
                 lv.v_pool, lv.pos_pool});
  rec.finish();
}

// Per stored row: the f16 scale of each 32-value block (empty for f16 rows).
float block_scale(DType t, const std::vector<uint16_t>& rows, size_t row, int block) {
  const size_t halfs = kv_row_bytes(t, kD) / 2;
  const size_t b = row * halfs + static_cast<size_t>(block) * (t == DType::kQ8_0 ? 17 : 9);
  return cpu::f16_to_f32(rows[b]);
}

// Bound on |stored value - f16(x)| for value c of row `row` (original x): the block's
// quantisation bound, plus the f16 roundings of x (the f16 cache) and of the dequantised value
// (kernels that keep tiles in f16), relative 2^-11 each.
double elem_bound(DType t, const std::vector<uint16_t>& rows, size_t row, int c, float x) {
  if (t == DType::kF16) return 0.0;
  const double b = kv_block_error_bound(t, block_scale(t, rows, row, c / 32));
  return b + 0x1p-10 * (std::fabs(x) + b);
}

struct Pair {
  std::unique_ptr<KvCache> f16, q;
};

// The same rows in an f16 cache and a (kt, vt) cache: 150 positions appended in three pieces
// (block boundaries crossed mid-append), then a ragged compaction.
Pair build(Device& dev, DType kt, DType vt, const Data& data, bool compact) {
  Pair p;
  p.f16 = std::make_unique<KvCache>(dev, KvCacheConfig{1, kH, kD, {}});
  p.q = std::make_unique<KvCache>(dev, KvCacheConfig{1, kH, kD, {}, kt, vt});
  int32_t pos = 0;
  for (int n : {70, 1, 79}) {
    append(dev, *p.f16, data, pos, n);
    append(dev, *p.q, data, pos, n);
    pos += n;
  }
  if (compact) {
    KeepSet keep;
    keep.rows.resize(1, std::vector<std::vector<int32_t>>(kH));
    for (int h = 0; h < kH; ++h)
      for (int32_t r = 0; r < 150; ++r)
        if (r < 4 || (r * (h + 3)) % 7 < 3) keep.rows[0][h].push_back(r);
    Recorder rec(dev);
    p.f16->compact(rec, keep);
    p.q->compact(rec, keep);
  }
  return p;
}

const std::vector<std::pair<DType, DType>> kTypes = {
    {DType::kQ8_0, DType::kQ8_0}, {DType::kQ4_0, DType::kQ4_0}, {DType::kQ4_0, DType::kQ8_0}};

TEST_P(DeviceTest, QuantisedRowsStayWithinTheBlockBoundThroughAppendAndCompaction) {
  const Data data = make_data(150, 7);
  for (auto [kt, vt] : kTypes) {
    SCOPED_TRACE(::testing::Message() << dtype_name(kt) << "/" << dtype_name(vt));
    Pair p = build(*dev, kt, vt, data, true);
    const auto raw = p.q->read_layer_raw(0);
    const auto deq = p.q->read_layer(0);
    {  // a clone holds the same stored bytes (pools copied as bytes, whatever the type)
      Recorder rec(*dev);
      const auto copy = p.q->clone(rec)->read_layer_raw(0);
      for (int h = 0; h < kH; ++h) EXPECT_TRUE(same_rows(copy[h], raw[h])) << "clone, head " << h;
    }
    size_t checked = 0;
    for (int h = 0; h < kH; ++h) {
      ASSERT_EQ(raw[h].pos, p.f16->positions(0, h));
      ASSERT_EQ(raw[h].k.size(), raw[h].pos.size() * kv_row_bytes(kt, kD) / 2);
      std::vector<float> row(kD);
      for (size_t r = 0; r < raw[h].pos.size(); ++r) {
        const int32_t pos = raw[h].pos[r];
        for (auto [t, rows, src] :
             {std::tuple{kt, &raw[h].k, &data.k}, std::tuple{vt, &raw[h].v, &data.v}}) {
          const size_t halfs = kv_row_bytes(t, kD) / 2;
          cpu::dequantize_kv_row(t, rows->data() + r * halfs, row.data(), kD);
          for (int c = 0; c < kD; ++c) {
            const float x = data.at(*src, pos, h, c);
            const double b = kv_block_error_bound(t, block_scale(t, *rows, r, c / 32));
            ASSERT_LE(std::fabs(row[c] - x), b) << "pos " << pos << " c " << c;
            ++checked;
          }
        }
        // read_layer's f16 view is the stored value rounded to f16.
        cpu::dequantize_kv_row(kt, raw[h].k.data() + r * kv_row_bytes(kt, kD) / 2, row.data(), kD);
        EXPECT_EQ(deq[h].k[r * kD + 3], cpu::f32_to_f16(row[3]));
      }
    }
    EXPECT_EQ(checked, 2u * kD * (raw[0].pos.size() + raw[1].pos.size()));
    // Bytes: whole 32-row blocks of (K row + V row + position) bytes per head.
    const size_t blocks = (raw[0].pos.size() + 31) / 32 + (raw[1].pos.size() + 31) / 32;
    EXPECT_EQ(p.q->bytes_in_use(),
              blocks * (32 * (kv_row_bytes(kt, kD) + kv_row_bytes(vt, kD) + 4) + 4) + kH * 4);
  }
}

// attention over the quantised cache vs the f16 cache, per output element within
// (e^{2 Delta} - 1) max_j |v_j| + max_j e^V_j: Delta bounds every logit's error (scale x sum over
// channels of |q_c| x the K element bound), which moves each softmax weight by a factor within
// e^{+-2 Delta}; e^V bounds the V element errors.
TEST_P(DeviceTest, AttentionOverQuantisedCacheWithinTheScaleDerivedBound) {
  const Data data = make_data(150, 11);
  Rng rng(5);
  // Mixed K/V types are independent spec constants of the same kernels (covered above).
  for (auto [kt, vt] :
       {std::pair{DType::kQ8_0, DType::kQ8_0}, std::pair{DType::kQ4_0, DType::kQ4_0}}) {
    // n_q 1: the decode kernel where the device has one, and the tiled kernel (fast = false).
    for (auto [n_q_, fast_] : {std::pair{1, true}, std::pair{1, false}, std::pair{40, true}}) {
      const int n_q = n_q_;  // lambdas below capture these (clang 14 cannot capture bindings)
      const bool fast = fast_;
      SCOPED_TRACE(::testing::Message() << dtype_name(kt) << "/" << dtype_name(vt) << " n_q " << n_q
                                        << (fast ? "" : " tiled"));
      Pair p = build(*dev, kt, vt, data, true);
      std::vector<Buffer> keep;
      const int n_heads = kH * kGroup;
      const std::vector<float> q = rng.uniform_vec(static_cast<size_t>(n_q) * n_heads * kD);
      std::vector<int32_t> qpos(static_cast<size_t>(n_q));
      for (int i = 0; i < n_q; ++i) qpos[i] = n_q == 1 ? 150 : 60 + 2 * i;  // causal masks too
      const float scale = 1.0f / std::sqrt(float(kD));
      auto run = [&](const KvCache& c) {
        const KvCache::LayerView lv = c.layer(0);
        PagedAttentionArgs a;
        a.q = upload_f32(*dev, keep, {n_q, n_heads, kD}, q);
        a.q_pos = upload(*dev, keep, DType::kI32, {n_q}, qpos.data());
        a.k_pool = lv.k_pool, a.v_pool = lv.v_pool, a.pos_pool = lv.pos_pool;
        a.block_table = lv.block_table, a.lens = lv.lens;
        a.out = alloc_tensor(*dev, keep, DType::kF32, {n_q, n_heads, kD});
        a.scale = scale;
        a.rows_sorted = true;
        a.allow_decode_kernel = fast;
        Recorder rec(*dev);
        paged_attention(rec, a);
        rec.finish();
        return download_f32(*dev, a.out);
      };
      const std::vector<float> ref = run(*p.f16), got = run(*p.q);
      const auto raw = p.q->read_layer_raw(0);
      int tight = 0;
      for (int i = 0; i < n_q; ++i)
        for (int hq = 0; hq < n_heads; ++hq) {
          const int h = hq / kGroup;
          const float* qv = q.data() + (static_cast<size_t>(i) * n_heads + hq) * kD;
          double delta = 0;
          std::vector<double> vmax(kD, 0.0), ev(kD, 0.0);
          for (size_t r = 0; r < raw[h].pos.size(); ++r) {
            const int32_t pos = raw[h].pos[r];
            if (pos > qpos[i]) continue;
            double dl = 0;
            for (int c = 0; c < kD; ++c) {
              const float kx = data.at(data.k, pos, h, c), vx = data.at(data.v, pos, h, c);
              dl += std::fabs(qv[c]) * elem_bound(kt, raw[h].k, r, c, kx);
              vmax[c] = std::max(vmax[c], double(std::fabs(vx)) * (1 + 0x1p-10));
              ev[c] = std::max(ev[c], elem_bound(vt, raw[h].v, r, c, vx));
            }
            delta = std::max(delta, scale * dl);
          }
          for (int c = 0; c < kD; ++c) {
            const size_t e = (static_cast<size_t>(i) * n_heads + hq) * kD + c;
            // f32 accumulation slack of both runs.
            const double bound = std::expm1(2 * delta) * vmax[c] + ev[c] + 1e-4 * vmax[c] + 1e-5;
            ASSERT_LE(std::fabs(got[e] - ref[e]), bound) << "i " << i << " hq " << hq << " c " << c;
            tight += bound < 0.5 * vmax[c];
          }
        }
      // The bound is informative for 8-bit keys, not only trivially true.
      if (kt == DType::kQ8_0) {
        EXPECT_GT(tight, n_q * n_heads * kD / 2);
      }
    }
  }
}

// Reconstruction scores from quantised keys: each score exp(logit - lse) moves by a factor within
// e^{+-2 Delta}; so a threshold rule keeps the same rows wherever the f16 score is more than that
// factor away from the threshold.
TEST_P(DeviceTest, ScoresFromQuantisedKeysKeepTheSameRowsAwayFromTheThreshold) {
  constexpr int kSink = 4, kT1 = 100, kNq = 20;  // context rows [4, 100), queries at rows 100..119
  const Data data = make_data(150, 23);
  Rng rng(9);
  const int n_heads = kH * kGroup;
  const std::vector<float> q = rng.uniform_vec(static_cast<size_t>(kNq) * n_heads * kD);
  const float scale = 1.0f / std::sqrt(float(kD));
  for (DType kt : {DType::kQ8_0, DType::kQ4_0}) {
    SCOPED_TRACE(dtype_name(kt));
    Pair p = build(*dev, kt, DType::kF16, data, false);
    std::vector<Buffer> keep;
    auto run = [&](const KvCache& c) {
      const KvCache::LayerView lv = c.layer(0);
      AttnScoreArgs a;
      a.q = upload_f32(*dev, keep, {kNq, n_heads, kD}, q);
      a.k_pool = lv.k_pool, a.block_table = lv.block_table;
      a.score = alloc_tensor(*dev, keep, DType::kF32, {kH, kT1 - kSink});
      a.lse = alloc_tensor(*dev, keep, DType::kF32, {kNq, n_heads});
      a.q16 = alloc_tensor(*dev, keep, DType::kF16, {kNq, n_heads, kD});
      a.n_sink = kSink, a.t0 = kSink, a.t1 = kT1, a.s0 = kT1, a.scale = scale;
      Recorder rec(*dev);
      attn_score(rec, a);
      rec.finish();
      return download_f32(*dev, a.score);
    };
    const std::vector<float> ref = run(*p.f16), got = run(*p.q);
    const auto raw = p.q->read_layer_raw(0);
    int far = 0, total = 0;
    for (int h = 0; h < kH; ++h) {
      // Delta over every (query, key row the scoring reads) of this KV head.
      double delta = 0;
      for (int hq = h * kGroup; hq < (h + 1) * kGroup; ++hq)
        for (int i = 0; i < kNq; ++i)
          for (int r = 0; r <= kT1 + i; ++r) {
            double dl = 0;
            for (int c = 0; c < kD; ++c)
              dl += std::fabs(q[(static_cast<size_t>(i) * n_heads + hq) * kD + c]) *
                    elem_bound(kt, raw[h].k, static_cast<size_t>(r), c, data.at(data.k, r, h, c));
            delta = std::max(delta, scale * dl);
          }
      const double f = std::exp(2 * delta);
      std::vector<float> sorted(ref.begin() + h * (kT1 - kSink),
                                ref.begin() + (h + 1) * (kT1 - kSink));
      std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
      const double thr = sorted[sorted.size() / 2];  // keep the upper half by the f16 scores
      for (int j = 0; j < kT1 - kSink; ++j) {
        const double s = ref[h * (kT1 - kSink) + j], sq = got[h * (kT1 - kSink) + j];
        ASSERT_LE(std::fabs(sq - s), s * (f - 1 + 1e-5) + 1e-7) << "head " << h << " row " << j;
        ++total;
        if (s > thr * f || s < thr / f) {
          ++far;
          EXPECT_EQ(sq > thr, s > thr) << "head " << h << " row " << j;
        }
      }
    }
    if (kt == DType::kQ8_0) {
      EXPECT_GT(far, total / 4) << "rows far from the threshold";
    }
  }
}

TEST(KvCacheType, NamesParseAndBadNamesAreInputErrors) {
  EXPECT_EQ(kv_cache_type_from_name("f16", "--cache-type-k"), DType::kF16);
  EXPECT_EQ(kv_cache_type_from_name("q8_0", "--cache-type-k"), DType::kQ8_0);
  EXPECT_EQ(kv_cache_type_from_name("Q4_0", "--cache-type-v"), DType::kQ4_0);
  for (const char* bad : {"q4_k", "f32", "", "q8", "bf16"}) {
    try {
      kv_cache_type_from_name(bad, "--cache-type-v");
      ADD_FAILURE() << bad << " accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--cache-type-v"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("q8_0"), std::string::npos) << e.what();
    }
  }
  // head_dim must hold whole blocks.
  EXPECT_THROW(KvCache(cpu_device(), KvCacheConfig{1, 1, 48, {}, DType::kQ8_0, DType::kF16}),
               InputError);
}

}  // namespace
}  // namespace kvz::test
