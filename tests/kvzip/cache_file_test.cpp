// KVZCACHE files (tests/kvzip): bit-exact round trip, and every damaged or foreign file refused
// with a FormatError naming the cause; an interrupted write never loads.
#include "kvzip/cache_file.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "kvzip/checksum.h"
#include "runtime/kv_quant.h"
#include "tests/kvzip/kv_util.h"

namespace kvz::test {
namespace {

constexpr int kL = 2, kH = 3, kD = 8;

std::vector<uint8_t> read_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
bool exists(const std::string& p) { return std::ifstream(p).good(); }

struct Saved {
  std::vector<std::vector<HeadRows>> rows;
  CacheFileMeta meta;
  Scores scores;
};

// A ragged cache of random f16 bits (NaN/inf patterns included) with random scores.
Saved make(Device& dev, const std::string& path, uint64_t seed,
           const std::string& model = "llama-3.1-8b@abc") {
  Rng rng(seed);
  Saved s;
  s.meta.model_identity = model;
  s.meta.n_prefix = 4;
  s.meta.n_context = 60;
  s.meta.next_pos = 64;
  s.meta.kept_fraction = 0.3;
  for (int i = 0; i < 64; ++i) s.meta.tokens.push_back(static_cast<int32_t>(rng.next() % 150000));
  s.meta.prunable = {true, false};
  s.rows.resize(kL, std::vector<HeadRows>(kH));
  for (int il = 0; il < kL; ++il)
    for (int ih = 0; ih < kH; ++ih) {
      HeadRows& r = s.rows[il][ih];
      for (int32_t p = 0; p < 64; ++p)
        if (p < 4 || rng.next() % (ih + 2) == 0) r.pos.push_back(p);
      for (size_t i = 0; i < r.pos.size() * kD; ++i) {
        r.k.push_back(static_cast<uint16_t>(rng.next() & 0xbfff));  // finite
        r.v.push_back(static_cast<uint16_t>(rng.next() & 0xbfff));
      }
    }
  s.scores = Scores(kL, kH, 60);
  for (float& x : s.scores.data) x = rng.uniform(0.0f, 1.0f);
  auto cache = KvCache::from_rows(dev, {kL, kH, kD, s.meta.prunable}, s.rows);
  save_cache_file(path, *cache, s.meta, &s.scores);
  return s;
}

::testing::AssertionResult throws_format_error(const std::function<void()>& f,
                                               const std::string& needle) {
  try {
    f();
  } catch (const FormatError& e) {
    if (std::string(e.what()).find(needle) == std::string::npos)
      return ::testing::AssertionFailure()
             << "FormatError without '" << needle << "': " << e.what();
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "other exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

class CacheFileTest : public DeviceTest {
 protected:
  std::string path() const {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');  // "Test/cpu"
    return ::testing::TempDir() + "/kvz_cache_" + name + ".kvz";
  }
};

TEST_P(CacheFileTest, RoundTripIsBitExact) {
  const std::string p = path();
  Saved s = make(*dev, p, 1);
  EXPECT_FALSE(exists(p + ".tmp")) << "temporary file left after a successful save";
  LoadedCache l = load_cache_file(p, *dev, "llama-3.1-8b@abc");
  EXPECT_EQ(l.meta.model_identity, s.meta.model_identity);
  EXPECT_EQ(l.meta.tokens, s.meta.tokens);
  EXPECT_EQ(l.meta.n_prefix, 4);
  EXPECT_EQ(l.meta.n_context, 60);
  EXPECT_EQ(l.meta.next_pos, 64);
  EXPECT_EQ(l.meta.kept_fraction, 0.3);
  EXPECT_EQ(l.meta.prunable, s.meta.prunable);
  EXPECT_EQ(l.cache->config().n_layers, kL);
  EXPECT_EQ(l.cache->config().n_kv_heads, kH);
  EXPECT_EQ(l.cache->config().head_dim, kD);
  EXPECT_EQ(l.cache->config().prunable, s.meta.prunable);
  for (int il = 0; il < kL; ++il) {
    auto rows = l.cache->read_layer(il);
    for (int ih = 0; ih < kH; ++ih) {
      EXPECT_TRUE(same_rows(rows[ih], s.rows[il][ih])) << "layer " << il << " head " << ih;
      EXPECT_EQ(l.cache->positions(il, ih), s.rows[il][ih].pos);
    }
  }
  ASSERT_EQ(l.scores.data.size(), s.scores.data.size());
  EXPECT_EQ(std::memcmp(l.scores.data.data(), s.scores.data.data(), s.scores.data.size() * 4), 0);
  // Saving the loaded cache again gives the identical file.
  save_cache_file(p + "2", *l.cache, l.meta, &l.scores);
  EXPECT_EQ(read_bytes(p + "2"), read_bytes(p));
  std::remove((p + "2").c_str());
  std::remove(p.c_str());
}

TEST_P(CacheFileTest, CorruptByteIsRefusedNamingTheCause) {
  const std::string p = path();
  make(*dev, p, 2);
  const std::vector<uint8_t> good = read_bytes(p);
  struct Case {
    size_t offset;
    std::string cause;
  };
  for (const Case& c : {Case{0, "bad magic"}, Case{8, "version"}, Case{good.size() / 2, "checksum"},
                        Case{30, "checksum"}, Case{good.size() - 1, "checksum"}}) {
    SCOPED_TRACE(c.offset);
    std::vector<uint8_t> bad = good;
    bad[c.offset] ^= 0x20;
    write_bytes(p, bad);
    EXPECT_TRUE(throws_format_error([&] { load_cache_file(p, *dev, ""); }, c.cause));
  }
  write_bytes(p, good);
  EXPECT_NO_THROW(load_cache_file(p, *dev, ""));
  std::remove(p.c_str());
}

TEST_P(CacheFileTest, TruncatedFileIsRefused) {
  const std::string p = path();
  make(*dev, p, 3);
  const std::vector<uint8_t> good = read_bytes(p);
  for (size_t keep : {size_t{0}, size_t{10}, good.size() / 3, good.size() - 9, good.size() - 1}) {
    SCOPED_TRACE(keep);
    write_bytes(p, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<int64_t>(keep)));
    EXPECT_THROW(load_cache_file(p, *dev, ""), FormatError);
  }
  write_bytes(p, std::vector<uint8_t>(good.begin(), good.begin() + 10));
  EXPECT_TRUE(throws_format_error([&] { load_cache_file(p, *dev, ""); }, "truncated"));
  std::remove(p.c_str());
}

TEST_P(CacheFileTest, MismatchedModelIdentityIsRefused) {
  const std::string p = path();
  make(*dev, p, 4, "qwen2.5-7b@111");
  EXPECT_TRUE(
      throws_format_error([&] { load_cache_file(p, *dev, "qwen2.5-7b@112"); }, "qwen2.5-7b@111"));
  EXPECT_NO_THROW(load_cache_file(p, *dev, "qwen2.5-7b@111"));
  std::remove(p.c_str());
}

TEST_P(CacheFileTest, InterruptedWriteNeverLoads) {
  const std::string p = path();
  Saved a = make(*dev, p, 5);
  // A second save was interrupted: only part of its temporary file exists.
  make(*dev, p + ".other", 6);
  std::vector<uint8_t> b = read_bytes(p + ".other");
  write_bytes(p + ".tmp",
              std::vector<uint8_t>(b.begin(), b.begin() + static_cast<int64_t>(b.size() / 2)));
  // The complete previous file still loads, unchanged.
  LoadedCache l = load_cache_file(p, *dev, "");
  EXPECT_EQ(l.meta.tokens, a.meta.tokens);
  EXPECT_TRUE(same_rows(l.cache->read_layer(1)[2], a.rows[1][2]));
  // The partial temporary file itself never loads, and without a complete file nothing loads.
  EXPECT_THROW(load_cache_file(p + ".tmp", *dev, ""), FormatError);
  std::remove(p.c_str());
  EXPECT_THROW(load_cache_file(p, *dev, ""), InputError);
  // A new complete save writes through its own exclusive temporary: another writer's leftover is
  // neither reused nor touched.
  make(*dev, p, 7);
  EXPECT_EQ(read_bytes(p + ".tmp").size(), b.size() / 2);
  EXPECT_NO_THROW(load_cache_file(p, *dev, ""));
  std::remove(p.c_str());
  std::remove((p + ".tmp").c_str());
  std::remove((p + ".other").c_str());
}

// A cache file written byte by byte as the given version lays it out (independent of the writer):
// the header JSON as given, then the rows as stored, no scores, the checksum.
std::vector<uint8_t> craft(uint32_t version, const nlohmann::json& header,
                           const std::vector<std::vector<HeadRows>>& rows) {
  std::vector<uint8_t> b = {'K', 'V', 'Z', 'C', 'A', 'C', 'H', 'E'};
  auto put = [&](const void* p, size_t n) {
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  const std::string hs = header.dump();
  const uint64_t hlen = hs.size();
  put(&version, 4);
  put(&hlen, 8);
  put(hs.data(), hs.size());
  for (const auto& layer : rows)
    for (const HeadRows& r : layer) {
      const auto n = static_cast<uint32_t>(r.pos.size());
      put(&n, 4);
      put(r.pos.data(), r.pos.size() * 4);
      put(r.k.data(), r.k.size() * 2);
      put(r.v.data(), r.v.size() * 2);
    }
  b.push_back(0);  // no scores
  const uint64_t sum = fnv1a64(b.data(), b.size());
  put(&sum, 8);
  return b;
}

nlohmann::json header_v2(const Saved& s, int head_dim) {
  return {{"model", s.meta.model_identity},
          {"n_layers", kL},
          {"n_kv_heads", kH},
          {"head_dim", head_dim},
          {"n_prefix", s.meta.n_prefix},
          {"n_context", s.meta.n_context},
          {"next_pos", s.meta.next_pos},
          {"kept_fraction", s.meta.kept_fraction},
          {"tokens", s.meta.tokens},
          {"prunable", s.meta.prunable}};
}

// Version 2 files (the format before typed rows: f16 rows, no type keys) still load, as f16.
TEST_P(CacheFileTest, Version2FileLoadsAsF16Cache) {
  const std::string p = path();
  Saved s = make(*dev, p, 8);
  write_bytes(p, craft(2, header_v2(s, kD), s.rows));
  LoadedCache l = load_cache_file(p, *dev, "");
  EXPECT_EQ(l.cache->config().k_type, DType::kF16);
  EXPECT_EQ(l.cache->config().v_type, DType::kF16);
  EXPECT_EQ(l.meta.tokens, s.meta.tokens);
  for (int il = 0; il < kL; ++il) {
    auto rows = l.cache->read_layer(il);
    for (int ih = 0; ih < kH; ++ih) EXPECT_TRUE(same_rows(rows[ih], s.rows[il][ih]));
  }
  EXPECT_TRUE(l.scores.empty());
  // Version 1 stays refused, and so does a version from the future.
  write_bytes(p, craft(1, header_v2(s, kD), s.rows));
  EXPECT_TRUE(throws_format_error([&] { load_cache_file(p, *dev, ""); }, "version 1"));
  write_bytes(p, craft(4, header_v2(s, kD), s.rows));
  EXPECT_TRUE(throws_format_error([&] { load_cache_file(p, *dev, ""); }, "version 4"));
  std::remove(p.c_str());
}

// q8_0 K / q4_0 V rows (random quants, finite random scales) survive save and load byte for byte,
// with their types; a header naming an unknown type or a head_dim of partial blocks is refused.
TEST_P(CacheFileTest, QuantisedRowsRoundTripBitExact) {
  constexpr int kQd = 64;
  const std::string p = path();
  Saved s = make(*dev, p, 9);
  Rng rng(10);
  const size_t kh = kv_row_bytes(DType::kQ8_0, kQd) / 2, vh = kv_row_bytes(DType::kQ4_0, kQd) / 2;
  for (auto& layer : s.rows)
    for (HeadRows& r : layer) {
      r.k.assign(r.pos.size() * kh, 0);
      r.v.assign(r.pos.size() * vh, 0);
      for (size_t i = 0; i < r.k.size(); ++i)
        r.k[i] = i % 17 == 0 ? cpu::f32_to_f16(rng.uniform(0.001f, 0.1f))
                             : static_cast<uint16_t>(rng.next());
      for (size_t i = 0; i < r.v.size(); ++i)
        r.v[i] = i % 9 == 0 ? cpu::f32_to_f16(rng.uniform(-0.2f, 0.2f))
                            : static_cast<uint16_t>(rng.next());
    }
  const KvCacheConfig cfg{kL, kH, kQd, s.meta.prunable, DType::kQ8_0, DType::kQ4_0};
  auto cache = KvCache::from_rows(*dev, cfg, s.rows);
  save_cache_file(p, *cache, s.meta, &s.scores);
  LoadedCache l = load_cache_file(p, *dev, "");
  EXPECT_EQ(l.cache->config().k_type, DType::kQ8_0);
  EXPECT_EQ(l.cache->config().v_type, DType::kQ4_0);
  for (int il = 0; il < kL; ++il) {
    auto rows = l.cache->read_layer_raw(il);
    for (int ih = 0; ih < kH; ++ih) EXPECT_TRUE(same_rows(rows[ih], s.rows[il][ih]));
  }
  save_cache_file(p + "2", *l.cache, l.meta, &l.scores);
  EXPECT_EQ(read_bytes(p + "2"), read_bytes(p));
  std::remove((p + "2").c_str());
  nlohmann::json h = header_v2(s, kQd);
  h["k_type"] = "q5_0";
  h["v_type"] = "q4_0";
  write_bytes(p, craft(3, h, s.rows));
  EXPECT_TRUE(throws_format_error([&] { load_cache_file(p, *dev, ""); }, "q5_0"));
  h["k_type"] = "q8_0";
  h["head_dim"] = 48;
  write_bytes(p, craft(3, h, s.rows));
  EXPECT_TRUE(throws_format_error([&] { load_cache_file(p, *dev, ""); }, "head_dim 48"));
  // A non-finite block scale is refused like a non-finite f16 value.
  h["head_dim"] = kQd;
  s.rows[0][0].k[17] = 0x7c00;
  write_bytes(p, craft(3, h, s.rows));
  EXPECT_TRUE(throws_format_error([&] { load_cache_file(p, *dev, ""); }, "non-finite key"));
  std::remove(p.c_str());
}

INSTANTIATE_TEST_SUITE_P(Backends, CacheFileTest, ::testing::Values("cpu", "vulkan"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace kvz::test
