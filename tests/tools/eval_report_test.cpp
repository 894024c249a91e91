// eval rows (tools/eval_report): KVzap thresholds survive the JSON-lines round trip, infinite ones
// included (JSON has no infinity), and rows of older files with a null threshold still load.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tools/eval_report.h"

namespace kvz::cli {
namespace {

EvalRow row(int sample, double ratio, std::optional<double> threshold) {
  return EvalRow{.task = "niah",
                 .model = "m",
                 .sample_id = "",
                 .method = "kvzap_mlp",
                 .sample = sample,
                 .ratio = ratio,
                 .kept_fraction = ratio,
                 .n_queries = 1,
                 .correct = 1,
                 .ok = {1.0},
                 .predictions = {"x"},
                 .ms = 0,
                 .threshold = threshold,
                 .kv_types = ""};
}

TEST(EvalReport, ThresholdsRoundTripIncludingInfinities) {
  const auto path = std::filesystem::temp_directory_path() / "kvz_eval_report_test.jsonl";
  std::filesystem::remove(path);
  const double inf = std::numeric_limits<double>::infinity();
  append_row(path.string(), row(0, 1.0, -inf));  // keep all
  append_row(path.string(), row(1, 0.0, inf));   // keep none
  append_row(path.string(), row(2, 0.3, -3.25));
  append_row(path.string(), row(3, 0.5, std::nullopt));
  {  // a row as written before infinities were encoded: null threshold
    std::ofstream f(path, std::ios::app);
    f << R"({"task":"niah","model":"m","sample":4,"sample_id":"","method":"kvzap_mlp",)"
      << R"("ratio":1.0,"kept_fraction":1.0,"n_queries":1,"correct":1,"ok":[1],)"
      << R"("predictions":["x"],"ms":0.0,"threshold":null})" << '\n';
  }
  const std::vector<EvalRow> rows = read_rows(path.string(), "niah", "m");
  ASSERT_EQ(rows.size(), 5u);
  ASSERT_TRUE(rows[0].threshold && rows[1].threshold && rows[2].threshold);
  EXPECT_TRUE(std::isinf(*rows[0].threshold) && *rows[0].threshold < 0);
  EXPECT_TRUE(std::isinf(*rows[1].threshold) && *rows[1].threshold > 0);
  EXPECT_EQ(*rows[2].threshold, -3.25);
  EXPECT_FALSE(rows[3].threshold);
  EXPECT_EQ(rows[4].sample, 4);
  EXPECT_FALSE(rows[4].threshold);
  std::filesystem::remove(path);
}

// Rows of a quantised K/V cache carry their types; each read sees only the rows of its own cache,
// so a resumed run never counts another storage type's cells as done.
TEST(EvalReport, RowsKeepTheirKvTypesApart) {
  const auto path = std::filesystem::temp_directory_path() / "kvz_eval_report_kv_test.jsonl";
  std::filesystem::remove(path);
  EvalRow q8 = row(0, 0.3, std::nullopt);
  q8.kv_types = "q8_0 K / q8_0 V";
  append_row(path.string(), row(0, 0.3, std::nullopt));
  append_row(path.string(), q8);
  append_row(path.string(), row(1, 0.3, std::nullopt));
  const std::vector<EvalRow> f16 = read_rows(path.string(), "niah", "m");
  ASSERT_EQ(f16.size(), 2u);
  EXPECT_EQ(f16[1].sample, 1);
  EXPECT_TRUE(f16[0].kv_types.empty());
  const std::vector<EvalRow> got = read_rows(path.string(), "niah", "m", q8.kv_types);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kv_types, q8.kv_types);
  EXPECT_TRUE(read_rows(path.string(), "niah", "m", "q4_0 K / q4_0 V").empty());
  std::filesystem::remove(path);
}

// Textbook values of the Wilson interval (Newcombe 1998, table I; and p = 1/2 at n = 100).
TEST(EvalReport, WilsonInterval) {
  auto near = [](std::pair<double, double> got, double lo, double hi) {
    EXPECT_NEAR(got.first, lo, 5e-4);
    EXPECT_NEAR(got.second, hi, 5e-4);
  };
  near(wilson_interval(81, 263), 0.2553, 0.3662);
  near(wilson_interval(15, 148), 0.0624, 0.1605);
  near(wilson_interval(0, 20), 0.0, 0.1611);
  near(wilson_interval(1, 29), 0.0061, 0.1718);
  near(wilson_interval(50, 100), 0.4038, 0.5962);
  near(wilson_interval(0, 0), 0.0, 1.0);
}

// Every method cell shows the absolute accuracy's interval; the full cache's row too.
TEST(EvalReport, TableShowsIntervals) {
  std::vector<EvalRow> rows;
  for (int s = 0; s < 2; ++s) {
    EvalRow f = row(s, 1.0, std::nullopt), k = row(s, 0.3, std::nullopt);
    f.method = "full";
    f.n_queries = k.n_queries = 2;
    f.ok = {1.0, 1.0};
    k.ok = {1.0, 0.0};
    f.correct = 2;
    k.correct = 1;
    k.method = "kvzip";
    rows.push_back(f);
    rows.push_back(k);
  }
  const std::string t = markdown_table(rows, {"kvzip"}, {0.3});
  EXPECT_NE(t.find("| full cache | 100.0 abs [51.0, 100.0] (4 queries, 2 samples) |"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("| kvzip | 50.0 (50.0 [15.0, 85.0]) |"), std::string::npos) << t;
}

// The split table counts each sample's first query apart from its later ones, for the full cache
// and per method and ratio; single-query tasks get no table.
TEST(EvalReport, QuerySplitSeparatesTheFirstQuery) {
  std::vector<EvalRow> rows;
  for (int s = 0; s < 2; ++s) {
    EvalRow f = row(s, 1.0, std::nullopt), k = row(s, 0.3, std::nullopt);
    f.method = "full";
    k.method = "snapkv";
    f.ok = {1.0, 1.0, 0.0};
    k.ok = {1.0, s == 0 ? 1.0 : 0.0, 0.0};  // first query always right, later 1 of 4
    f.n_queries = k.n_queries = 3;
    rows.push_back(f);
    rows.push_back(k);
  }
  const std::string t = query_split_table(rows, {"snapkv", "kvzip"}, {0.3});
  EXPECT_NE(t.find("| full cache | 100.0 / 50.0 (2 first, 4 later queries) |"), std::string::npos)
      << t;
  EXPECT_NE(t.find("| snapkv | 100.0 / 25.0 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| kvzip | – |"), std::string::npos) << t;
  for (EvalRow& r : rows) r.ok.resize(1);
  EXPECT_EQ(query_split_table(rows, {"snapkv"}, {0.3}), "");
}

}  // namespace
}  // namespace kvz::cli
