// `kvzip bench --compare A.json B.json ...`: the JSON of several `kvzip bench --json` runs (other
// devices, builds) and of llama.cpp's `llama-bench -o json` side by side, as one markdown table
// with ratios to the first file and a PNG chart of the tokens/s rows (tools/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/png_image.h"

namespace kvz::cli {

// One measured row: `test` as kvzip bench names it ("pp512", "tg64", "kvzip prefill", ...).
struct BenchRow {
  std::string test, unit;
  int64_t depth = 0;
  double mean = 0, std = 0;
};

// The rows of one file, with a short label (the file name without its folder and extension) and
// what ran them (device, driver, model, engine).
struct BenchRun {
  std::string label, path, description;
  std::vector<BenchRow> rows;
};

// Reads a `kvzip bench --json` file or a `llama-bench -o json` file (whose pp/tg/pg tests become
// "pp512", "tg128", "pp512+tg128" at n_depth, and whose model_size a "weights" row in MiB).
// Throws InputError when the file cannot be read, FormatError (naming the file and the row) when
// it is not one of the two formats or repeats a (test, depth) row.
BenchRun read_bench_json(const std::string& path);

// The side-by-side table: one row per (test, depth, unit) in the order of first appearance, each
// run's mean +- std and, from the second run on, its ratio to the first run's mean.
std::string compare_markdown(const std::vector<BenchRun>& runs);

// Bars of every tok/s row that the first run has: each run's tokens/s relative to the first's.
// Throws InputError when no such row exists.
Image compare_chart(const std::vector<BenchRun>& runs);

// The command: the table on stdout; the chart to `png` (through the atomic writer) unless empty.
int run_bench_compare(const std::vector<std::string>& files, const std::string& png);

}  // namespace kvz::cli
