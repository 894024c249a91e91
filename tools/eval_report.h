// Results of `kvzip eval` (tools/): the JSON-lines rows (one per sample, method and kept ratio),
// resuming from an existing file, the markdown table and the gnuplot PNG.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace kvz::cli {

// One (sample, method, ratio) evaluation. method "full" = the uncompressed cache (ratio 1).
struct EvalRow {
  std::string task, model, sample_id, method;
  int sample = 0;
  double ratio = 1.0, kept_fraction = 1.0;
  int n_queries = 0;
  double correct = 0;                    // sum of ok
  std::vector<double> ok;                // [n_queries] score in [0, 1] (0/1 for most tasks)
  std::vector<std::string> predictions;  // [n_queries]
  double ms = 0;                         // prune + answers
  std::optional<double> threshold;       // KVzap rows: the log-score threshold applied
  std::string kv_types;                  // "q8_0 K / q8_0 V" etc.; empty for the f16 cache
};

// Key used for resuming: the ratio is compared at 4 significant digits.
using RowKey = std::tuple<int, std::string, std::string>;
RowKey row_key(int sample, const std::string& method, double ratio);

// Rows of `path` whose task, model and K/V storage types match (a missing file gives none; rows
// without "kv_types" are the f16 cache's). Lines that do not parse are skipped with a warning (a
// run killed mid-write leaves at most one).
std::vector<EvalRow> read_rows(const std::string& path, const std::string& task,
                               const std::string& model, const std::string& kv_types = "");
// Appends one row as a JSON line and flushes. Throws InputError if the file cannot be written.
void append_row(const std::string& path, const EvalRow& row);

// The Wilson score interval of a proportion k / n (k may be fractional: partial-credit metrics
// count their summed scores), at z = 1.96 for 95 %; {0, 1} when n is 0.
std::pair<double, double> wilson_interval(double k, int n, double z = 1.96);

// Markdown table: one row per method, one column per ratio; cells = accuracy relative to the full
// cache on the same samples (%), with the absolute accuracy and its 95 % Wilson interval in
// parentheses.
std::string markdown_table(const std::vector<EvalRow>& rows,
                           const std::vector<std::string>& methods,
                           const std::vector<double>& ratios);
// For tasks with several queries per context: each method's absolute accuracy (%) on the first
// query of every sample (the one the query-aware baselines observe) and on the later ones, the full
// cache's on the same samples first. It shows whether a method generalises past the query it saw.
// Empty when no sample has more than one query.
std::string query_split_table(const std::vector<EvalRow>& rows,
                              const std::vector<std::string>& methods,
                              const std::vector<double>& ratios);
// Writes `png` (relative accuracy vs kept ratio, one line per method) with gnuplot. Returns false
// with `why` set when gnuplot is missing or fails.
bool plot_png(const std::vector<EvalRow>& rows, const std::vector<std::string>& methods,
              const std::vector<double>& ratios, const std::string& title, const std::string& png,
              std::string& why);

}  // namespace kvz::cli
