// The atomic writer (tests/runtime): a reader sees the old file or the whole new one; a full
// disk, a read-only folder or a planted link leaves the destination as it was and no temporary.
#include "runtime/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "runtime/error.h"
#include "tests/common/fs_fault.h"

namespace kvz::test {
namespace {

TEST(AtomicFile, WritesReplacesAndLeavesNoTemporary) {
  const std::string d = make_scratch_dir("atomic");
  const std::string p = d + "/out.bin";
  write_file_atomic(p, std::string_view("first"));
  EXPECT_EQ(read_all(p), "first");
  write_file_atomic(p, std::string_view("second, longer"));
  EXPECT_EQ(read_all(p), "second, longer");
  append_file_atomic(p, "\nthird");
  EXPECT_EQ(read_all(p), "second, longer\nthird");
  append_file_atomic(d + "/new.jsonl", "a\n");
  EXPECT_EQ(read_all(d + "/new.jsonl"), "a\n");
  EXPECT_EQ(list_dir(d).size(), 2u);
  std::filesystem::remove_all(d);
}

TEST(AtomicFile, UncommittedWriteLeavesTheOldFile) {
  const std::string d = make_scratch_dir("atomic");
  const std::string p = d + "/out.bin";
  write_file_atomic(p, std::string_view("old"));
  {
    AtomicFile f(p);
    f.write("new contents");
    EXPECT_TRUE(std::filesystem::exists(f.temp_path()));
    EXPECT_EQ(std::filesystem::path(f.temp_path()).parent_path(), std::filesystem::path(d));
  }
  EXPECT_EQ(read_all(p), "old");
  EXPECT_EQ(list_dir(d).size(), 1u);
  std::filesystem::remove_all(d);
}

TEST(AtomicFile, FullDiskKeepsTheOldFile) {
  FullDisk disk(16384);
  const std::string p = disk.dir() + "/out.bin";
  write_file_atomic(p, std::string_view("old"));
  const std::string big(200000, 'x');
  disk.full([&] { EXPECT_THROW(write_file_atomic(p, big), IoError); });
  EXPECT_EQ(read_all(p), "old");
  EXPECT_EQ(list_dir(disk.dir()).size(), 1u) << "a temporary was left on the full disk";
  disk.full([&] { EXPECT_THROW(append_file_atomic(p, big), IoError); });
  EXPECT_EQ(read_all(p), "old");
}

TEST(AtomicFile, ReadOnlyFolderKeepsTheOldFile) {
  ReadOnlyDir ro;
  const std::string p = ro.dir() + "/out.bin";
  write_file_atomic(p, std::string_view("old"));
  if (!ro.seal()) GTEST_SKIP() << "cannot make a read-only folder as this user";
  EXPECT_THROW(write_file_atomic(p, std::string_view("new")), IoError);
  EXPECT_EQ(read_all(p), "old");
  EXPECT_EQ(list_dir(ro.dir()).size(), 1u);
}

TEST(AtomicFile, NeverFollowsALinkAtTheTemporaryName) {
  const std::string d = make_scratch_dir("atomic");
  const std::string victim = d + "/victim";
  write_file_atomic(victim, std::string_view("precious"));
  // The exclusive open refuses a link at the name, dangling or not.
  ASSERT_EQ(::symlink(victim.c_str(), (d + "/planted.tmp").c_str()), 0);
  ASSERT_EQ(::symlink((d + "/nowhere").c_str(), (d + "/dangling.tmp").c_str()), 0);
  EXPECT_THROW(detail::open_exclusive(d + "/planted.tmp"), IoError);
  EXPECT_THROW(detail::open_exclusive(d + "/dangling.tmp"), IoError);
  EXPECT_FALSE(std::filesystem::exists(d + "/nowhere"));
  // The old fixed temporary name (path + ".tmp") as a link: the write goes elsewhere.
  ASSERT_EQ(::symlink(victim.c_str(), (d + "/out.bin.tmp").c_str()), 0);
  write_file_atomic(d + "/out.bin", std::string_view("output"));
  EXPECT_EQ(read_all(victim), "precious");
  EXPECT_EQ(read_all(d + "/out.bin"), "output");
  std::filesystem::remove_all(d);
}

TEST(AtomicFile, AppendingToANamedPipeIsRefusedWithoutBlocking) {
  const std::string d = make_scratch_dir("atomic");
  ASSERT_EQ(::mkfifo((d + "/pipe").c_str(), 0600), 0);
  EXPECT_THROW(append_file_atomic(d + "/pipe", "x\n"), Error);
  EXPECT_THROW(read_regular_file(d + "/pipe"), InputError);
  EXPECT_THROW(read_regular_file(d), InputError);
  std::filesystem::remove_all(d);
}

TEST(AtomicFile, RefusesAFolderAndAnEmptyName) {
  const std::string d = make_scratch_dir("atomic");
  EXPECT_THROW(write_file_atomic(d, std::string_view("x")), IoError);
  EXPECT_THROW(write_file_atomic("", std::string_view("x")), IoError);
  EXPECT_THROW(write_file_atomic(d + "/missing/sub/file", std::string_view("x")), IoError);
  EXPECT_TRUE(list_dir(d).empty());
  std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace kvz::test
