// Cache files that pass the checksum but hold nonsense (tests/kvzip): refused with a FormatError
// instead of reaching an invariant check (next position 0 or negative, positions at or past it or
// near INT32_MAX, NaN keys or values, a kept fraction outside [0, 1], negative token ids, NaN
// scores), and head-score / KVzap files of the wrong shape or with NaN values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "kvzip/cache_file.h"
#include "kvzip/kvzap.h"
#include "kvzip/scores.h"
#include "tests/common/fs_fault.h"
#include "tests/common/test_device.h"
#include "tests/kvzip/cache_edit.h"

namespace kvz::test {
namespace {

constexpr int kL = 2, kH = 2, kD = 8, kN = 6;

// A valid file: kN context rows per head at positions 0..kN-1, next position kN, with scores.
std::string make_file(const std::string& dir) {
  std::vector<std::vector<HeadRows>> rows(kL, std::vector<HeadRows>(kH));
  CacheFileMeta meta;
  meta.model_identity = "m";
  meta.n_context = kN;
  meta.next_pos = kN;
  meta.kept_fraction = 1.0;
  for (int t = 0; t < kN; ++t) meta.tokens.push_back(t);
  meta.prunable = {true, true};
  for (auto& layer : rows)
    for (HeadRows& r : layer)
      for (int t = 0; t < kN; ++t) {
        r.pos.push_back(t);
        r.k.insert(r.k.end(), kD, 0x3c00);
        r.v.insert(r.v.end(), kD, 0x3c00);
      }
  auto cache = KvCache::from_rows(cpu_device(), {kL, kH, kD, meta.prunable}, rows);
  Scores s(kL, kH, kN);
  const std::string path = dir + "/c.kvz";
  save_cache_file(path, *cache, meta, &s);
  return path;
}

// Byte offset of the first key of the first head inside the payload (after u32 n_rows + pos).
constexpr size_t kFirstKey = 4 + kN * 4;

::testing::AssertionResult refused(const std::string& path, const std::string& needle) {
  try {
    load_cache_file(path, cpu_device(), "");
  } catch (const FormatError& e) {
    if (std::string(e.what()).find(needle) == std::string::npos)
      return ::testing::AssertionFailure() << "message without '" << needle << "': " << e.what();
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "loaded";
}

class CacheHardening : public ::testing::Test {
 protected:
  void SetUp() override { path_ = make_file(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_ = make_scratch_dir("cachehard"), path_;
};

TEST_F(CacheHardening, TheUneditedFileLoads) {
  edit_cache_file(path_, [](nlohmann::json&) {});
  EXPECT_NO_THROW(load_cache_file(path_, cpu_device(), "m"));
}

TEST_F(CacheHardening, NextPositionZeroOrNegative) {
  for (int np : {0, -1, -2147483647}) {
    make_file(dir_);
    edit_cache_file(path_, [&](nlohmann::json& h) { h["next_pos"] = np; });
    EXPECT_TRUE(refused(path_, "next position")) << np;
  }
}

TEST_F(CacheHardening, NextPositionNearInt32Max) {
  edit_cache_file(path_, [](nlohmann::json& h) { h["next_pos"] = 2147483647; });
  EXPECT_TRUE(refused(path_, "next position"));
}

TEST_F(CacheHardening, PositionsNearInt32MaxOrPastTheNextPosition) {
  edit_cache_file(path_, {}, [](std::vector<uint8_t>& p) {
    const int32_t big = 2147483600;
    std::memcpy(&p[4 + (kN - 1) * 4], &big, 4);
  });
  EXPECT_TRUE(refused(path_, "position"));
}

TEST_F(CacheHardening, NanKeyOrValue) {
  edit_cache_file(path_, {}, [](std::vector<uint8_t>& p) {
    const uint16_t nan = 0x7e00;
    std::memcpy(&p[kFirstKey + 6], &nan, 2);
  });
  EXPECT_TRUE(refused(path_, "non-finite key"));
  make_file(dir_);
  edit_cache_file(path_, {}, [](std::vector<uint8_t>& p) {
    const uint16_t inf = 0xfc00;
    std::memcpy(&p[kFirstKey + kN * kD * 2], &inf, 2);
  });
  EXPECT_TRUE(refused(path_, "non-finite value"));
}

TEST_F(CacheHardening, KeptFractionOutsideZeroOne) {
  for (double f : {-5.0, 1.5}) {
    make_file(dir_);
    edit_cache_file(path_, [&](nlohmann::json& h) { h["kept_fraction"] = f; });
    EXPECT_TRUE(refused(path_, "kept fraction")) << f;
  }
}

TEST_F(CacheHardening, NegativeTokenId) {
  edit_cache_file(path_, [](nlohmann::json& h) { h["tokens"][2] = -7; });
  EXPECT_TRUE(refused(path_, "id -7"));
}

TEST_F(CacheHardening, NanScore) {
  edit_cache_file(path_, {}, [](std::vector<uint8_t>& p) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(&p[p.size() - 4], &nan, 4);
  });
  EXPECT_TRUE(refused(path_, "non-finite score"));
}

TEST_F(CacheHardening, MistypedHeaderIsAFormatError) {
  edit_cache_file(path_, [](nlohmann::json& h) { h["next_pos"] = "six"; });
  EXPECT_TRUE(refused(path_, "malformed"));
}

TEST_F(CacheHardening, FolderOrNamedPipeIsAnInputError) {
  EXPECT_THROW(load_cache_file(dir_, cpu_device(), ""), InputError);
  const std::string fifo = dir_ + "/pipe.kvz";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THROW(load_cache_file(fifo, cpu_device(), ""), InputError);  // no hang
}

TEST(HeadScoreFiles, WrongShapeOrNanIsAFormatError) {
  const std::string d = make_scratch_dir("hs");
  auto write = [&](const std::string& text) {
    std::ofstream(d + "/h.json") << text;
    return d + "/h.json";
  };
  const std::string head = R"({"format":"kvzip-head-scores","version":2,"model":"m",)";
  EXPECT_THROW(HeadScores::load(write(head + R"("n_layers":2,"n_kv_heads":2,"scores":[1,2,3]})")),
               FormatError);
  EXPECT_THROW(HeadScores::load(write(head + R"("n_layers":2,"n_kv_heads":1,"scores":{"a":1}})")),
               FormatError);
  EXPECT_THROW(HeadScores::load(write(head + R"("n_layers":"2","n_kv_heads":1,"scores":[1,2]})")),
               FormatError);
  EXPECT_THROW(
      HeadScores::load(write(head + R"("n_layers":65536,"n_kv_heads":65536,"scores":[1]})")),
      FormatError);
  EXPECT_THROW(HeadScores::load(write(head + R"("n_layers":1,"n_kv_heads":1,"scores":[1e99]})")),
               FormatError);
  EXPECT_THROW(HeadScores::load(write(R"([1,2,3])")), FormatError);
  EXPECT_THROW(HeadScores::load(write(R"({"format":"kvzip-head-scores","version":1})")),
               FormatError);
  EXPECT_THROW(HeadScores::load(d), InputError);
  std::filesystem::remove_all(d);
}

TEST(KvzapFiles, NanWeightIsAFormatError) {
  const std::string d = make_scratch_dir("kvzap");
  KvzapModel m(KvzapKind::kLinear, 1, 4, 0, 2, "m");
  m.layer(0).w1[3] = std::numeric_limits<float>::quiet_NaN();
  m.save(d + "/w.kvzap");
  EXPECT_THROW(KvzapModel::load(d + "/w.kvzap"), FormatError);
  EXPECT_THROW(KvzapModel::load(d), InputError);
  std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace kvz::test
