// The eval JSON-lines writer goes through the atomic writer (tests/tools): a full disk or a
// read-only folder keeps every earlier row, and a link at the old temporary name is not followed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "runtime/atomic_file.h"
#include "runtime/error.h"
#include "tests/common/fs_fault.h"
#include "tools/eval_report.h"

namespace kvz::cli {
namespace {

using test::FullDisk;
using test::list_dir;
using test::read_all;
using test::ReadOnlyDir;

EvalRow row(int sample, std::string prediction) {
  return EvalRow{.task = "niah",
                 .model = "m",
                 .sample_id = "",
                 .method = "kvzip",
                 .sample = sample,
                 .ratio = 0.5,
                 .kept_fraction = 0.5,
                 .n_queries = 1,
                 .correct = 1,
                 .ok = {1.0},
                 .predictions = {std::move(prediction)},
                 .ms = 0,
                 .threshold = std::nullopt,
                 .kv_types = ""};
}

TEST(OutputWriters, EvalRowsSurviveAFullDisk) {
  FullDisk disk(16384);
  const std::string p = disk.dir() + "/rows.jsonl";
  append_row(p, row(0, "a"));
  append_row(p, row(1, "b"));
  const std::string old = read_all(p);
  disk.full([&] { EXPECT_THROW(append_row(p, row(2, std::string(100000, 'x'))), IoError); });
  EXPECT_EQ(read_all(p), old);
  EXPECT_EQ(list_dir(disk.dir()), std::vector<std::string>{"rows.jsonl"});
  EXPECT_EQ(read_rows(p, "niah", "m").size(), 2u);
}

TEST(OutputWriters, EvalRowsInAReadOnlyFolder) {
  ReadOnlyDir ro;
  const std::string p = ro.dir() + "/rows.jsonl";
  append_row(p, row(0, "a"));
  const std::string old = read_all(p);
  if (!ro.seal()) GTEST_SKIP() << "cannot make a read-only folder as this user";
  EXPECT_THROW(append_row(p, row(1, "b")), IoError);
  EXPECT_EQ(read_all(p), old);
}

TEST(OutputWriters, EvalRowsNeverFollowALinkAtTheTemporaryName) {
  const std::string d = test::make_scratch_dir("rows");
  const std::string victim = d + "/victim", p = d + "/rows.jsonl";
  { std::ofstream(victim) << "precious"; }
  ASSERT_EQ(::symlink(victim.c_str(), (p + ".tmp").c_str()), 0);
  append_row(p, row(0, "a"));
  EXPECT_EQ(read_all(victim), "precious");
  EXPECT_EQ(read_rows(p, "niah", "m").size(), 1u);
  EXPECT_EQ(list_dir(d).size(), 3u);
  std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace kvz::cli
