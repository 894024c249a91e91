// Every kvzip/ output file (cache files, KVzap weights, head scores) goes through the atomic
// writer (tests/kvzip): on a full disk and in a read-only folder the old file survives intact and
// no temporary is left; a link planted at the old fixed temporary name (path + ".tmp") is never
// followed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "kvzip/cache_file.h"
#include "kvzip/kvzap.h"
#include "kvzip/scores.h"
#include "runtime/atomic_file.h"
#include "runtime/error.h"
#include "tests/common/fs_fault.h"
#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

// One writer: `write(path, variant)` writes a small (variant 0) or large (variant 1, over the
// full disk's 16 KiB) file.
struct Writer {
  const char* name;
  std::function<void(const std::string&, int)> write;
};

void write_cache(const std::string& path, int variant) {
  const int L = variant ? 8 : 1, H = 2, D = 16, n = variant ? 64 : 2;
  std::vector<std::vector<HeadRows>> rows(L, std::vector<HeadRows>(H));
  CacheFileMeta meta;
  meta.model_identity = "writer-test";
  meta.n_context = n;
  meta.next_pos = n;
  for (int t = 0; t < n; ++t) meta.tokens.push_back(t);
  meta.prunable.assign(static_cast<size_t>(L), true);
  for (auto& layer : rows)
    for (HeadRows& r : layer)
      for (int t = 0; t < n; ++t) {
        r.pos.push_back(t);
        for (int d = 0; d < D; ++d) {
          r.k.push_back(0x3c00);  // 1.0 in f16
          r.v.push_back(0x4000);  // 2.0
        }
      }
  auto cache = KvCache::from_rows(cpu_device(), {L, H, D, meta.prunable}, rows);
  save_cache_file(path, *cache, meta);
}

void write_kvzap(const std::string& path, int variant) {
  KvzapModel(KvzapKind::kMlp, variant ? 16 : 1, 32, variant ? 16 : 1, 2, "writer-test").save(path);
}

void write_head_scores(const std::string& path, int variant) {
  HeadScores h;
  h.n_layers = variant ? 64 : 1;
  h.n_kv_heads = variant ? 32 : 1;
  h.model_identity = "writer-test";
  h.data.assign(static_cast<size_t>(h.n_layers * h.n_kv_heads), 0.123456f);
  h.save(path);
}

class WriterTest : public ::testing::TestWithParam<Writer> {};

TEST_P(WriterTest, FullDiskKeepsTheOldFile) {
  FullDisk disk(16384);
  const std::string p = disk.dir() + "/out";
  GetParam().write(p, 0);
  const std::string old = read_all(p);
  ASSERT_FALSE(old.empty());
  ASSERT_LT(old.size(), 4096u);
  disk.full([&] { EXPECT_THROW(GetParam().write(p, 1), IoError); });
  EXPECT_EQ(read_all(p), old) << "the old file was damaged";
  EXPECT_EQ(list_dir(disk.dir()), std::vector<std::string>{"out"}) << "a temporary was left";
}

TEST_P(WriterTest, ReadOnlyFolderKeepsTheOldFile) {
  ReadOnlyDir ro;
  const std::string p = ro.dir() + "/out";
  GetParam().write(p, 0);
  const std::string old = read_all(p);
  if (!ro.seal()) GTEST_SKIP() << "cannot make a read-only folder as this user";
  EXPECT_THROW(GetParam().write(p, 1), IoError);
  EXPECT_EQ(read_all(p), old);
  EXPECT_EQ(list_dir(ro.dir()), std::vector<std::string>{"out"});
}

TEST_P(WriterTest, LinkAtTheOldTemporaryNameIsNotFollowed) {
  const std::string d = make_scratch_dir("writer");
  const std::string victim = d + "/victim", p = d + "/out";
  { std::ofstream(victim) << "precious"; }
  ASSERT_EQ(::symlink(victim.c_str(), (p + ".tmp").c_str()), 0);
  GetParam().write(p, 1);
  EXPECT_EQ(read_all(victim), "precious");
  EXPECT_TRUE(std::filesystem::is_symlink(p + ".tmp"));
  EXPECT_EQ(list_dir(d).size(), 3u) << "a temporary was left";
  std::filesystem::remove_all(d);
}

INSTANTIATE_TEST_SUITE_P(Files, WriterTest,
                         ::testing::Values(Writer{"cache", write_cache},
                                           Writer{"kvzap", write_kvzap},
                                           Writer{"head_scores", write_head_scores}),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace kvz::test
