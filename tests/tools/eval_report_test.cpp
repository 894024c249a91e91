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
                 .threshold = threshold};
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

}  // namespace
}  // namespace kvz::cli
