// KVZCACHE files (tests/kvzip): bit-exact round trip, and every damaged or foreign file refused
// with a FormatError naming the cause; an interrupted write never loads.
#include "kvzip/cache_file.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

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

INSTANTIATE_TEST_SUITE_P(Backends, CacheFileTest, ::testing::Values("cpu", "vulkan"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace kvz::test
