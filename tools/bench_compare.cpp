// `kvzip bench --compare`: reads kvzip bench and llama-bench JSON, prints the side-by-side table
// and draws the tokens/s chart (tools/).
#include "tools/bench_compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "runtime/atomic_file.h"
#include "runtime/error.h"

namespace kvz::cli {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& path, size_t i, const std::string& what) {
  throw FormatError(fmt::format("{}: row {}: {}", path, i, what));
}

const json& field(const std::string& path, size_t i, const json& row, const char* key,
                  json::value_t type) {
  const auto it = row.find(key);
  const bool ok = it != row.end() &&
                  (it->type() == type || (type == json::value_t::number_float && it->is_number()) ||
                   (type == json::value_t::number_integer && it->is_number_unsigned()));
  if (!ok)
    bad(path, i,
        fmt::format("'{}' missing or not a {}", key,
                    type == json::value_t::string           ? "string"
                    : type == json::value_t::number_integer ? "whole number"
                                                            : "number"));
  return *it;
}

std::string opt_string(const json& row, const char* key) {
  const auto it = row.find(key);
  return it != row.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t whole(const std::string& path, size_t i, const json& row, const char* key) {
  const int64_t v = field(path, i, row, key, json::value_t::number_integer).get<int64_t>();
  if (v < 0) bad(path, i, fmt::format("'{}' is negative", key));
  return v;
}

// A llama-bench row: n_prompt / n_gen / n_depth name the test, avg_ts / stddev_ts its speed.
BenchRow llama_bench_row(const std::string& path, size_t i, const json& row) {
  const int64_t p = whole(path, i, row, "n_prompt"), g = whole(path, i, row, "n_gen");
  BenchRow r;
  if (p > 0 && g > 0)
    r.test = fmt::format("pp{}+tg{}", p, g);
  else if (p > 0 || g > 0)
    r.test = p > 0 ? fmt::format("pp{}", p) : fmt::format("tg{}", g);
  else
    bad(path, i, "neither n_prompt nor n_gen is positive");
  r.depth = row.contains("n_depth") ? whole(path, i, row, "n_depth") : 0;
  r.unit = "tok/s";
  r.mean = field(path, i, row, "avg_ts", json::value_t::number_float).get<double>();
  if (row.contains("stddev_ts"))
    r.std = field(path, i, row, "stddev_ts", json::value_t::number_float).get<double>();
  return r;
}

BenchRow kvzip_row(const std::string& path, size_t i, const json& row) {
  BenchRow r;
  r.test = field(path, i, row, "test", json::value_t::string).get<std::string>();
  r.unit = field(path, i, row, "unit", json::value_t::string).get<std::string>();
  r.depth = whole(path, i, row, "depth");
  r.mean = field(path, i, row, "mean", json::value_t::number_float).get<double>();
  if (row.contains("std"))
    r.std = field(path, i, row, "std", json::value_t::number_float).get<double>();
  return r;
}

std::string key(const BenchRow& r) {
  return fmt::format("{}\x1f{}\x1f{}", r.test, r.depth, r.unit);
}

const BenchRow* find(const BenchRun& run, const BenchRow& like) {
  for (const BenchRow& r : run.rows)
    if (r.test == like.test && r.depth == like.depth && r.unit == like.unit) return &r;
  return nullptr;
}

// Every (test, depth, unit) of all runs, in order of first appearance.
std::vector<BenchRow> all_keys(const std::vector<BenchRun>& runs) {
  std::vector<BenchRow> keys;
  std::map<std::string, bool> seen;
  for (const BenchRun& run : runs)
    for (const BenchRow& r : run.rows)
      if (!seen[key(r)]) seen[key(r)] = true, keys.push_back(r);
  return keys;
}

// Two decimals, or two significant digits below 0.1 (a CPU next to a GPU is not "0.00x").
std::string ratio_text(double v, double first) {
  if (first <= 0) return "-";
  const double r = v / first;
  return r >= 0.1 ? fmt::format("{:.2f}x", r) : fmt::format("{:.2g}x", r);
}

}  // namespace

BenchRun read_bench_json(const std::string& path) {
  const std::vector<uint8_t> bytes = read_regular_file(path);
  json doc;
  try {
    doc = json::parse(bytes.begin(), bytes.end());
  } catch (const json::parse_error& e) {
    throw FormatError(fmt::format("{}: not JSON ({})", path, e.what()));
  }
  if (!doc.is_array() || doc.empty())
    throw FormatError(
        fmt::format("{}: expected a non-empty JSON array of benchmark rows (kvzip "
                    "bench --json or llama-bench -o json)",
                    path));
  BenchRun run;
  run.path = path;
  run.label = std::filesystem::path(path).stem().string();
  const bool llama = doc[0].is_object() && doc[0].contains("avg_ts");
  for (size_t i = 0; i < doc.size(); ++i) {
    const json& row = doc[i];
    if (!row.is_object()) bad(path, i, "not a JSON object");
    if (llama != row.contains("avg_ts"))
      bad(path, i, "mixes llama-bench rows (avg_ts) with kvzip bench rows");
    BenchRow r = llama ? llama_bench_row(path, i, row) : kvzip_row(path, i, row);
    if (find(run, r))
      bad(path, i,
          fmt::format("'{}' at depth {} appears twice (one model and device per file)", r.test,
                      r.depth));
    run.rows.push_back(std::move(r));
    if (llama && i == 0 && row.contains("model_size"))
      run.rows.push_back(
          {"weights", "MiB", 0,
           field(path, i, row, "model_size", json::value_t::number_float).get<double>() / (1 << 20),
           0.0});
  }
  const json& r0 = doc[0];
  run.description =
      llama ? fmt::format("llama.cpp {} ({}), {} on {}; {}", opt_string(r0, "build_commit"),
                          opt_string(r0, "backends"), opt_string(r0, "gpu_info"),
                          opt_string(r0, "cpu_info"), opt_string(r0, "model_type"))
            : fmt::format("kvzip-vk on {}; {} {}", opt_string(r0, "device"),
                          opt_string(r0, "model"), opt_string(r0, "quant"));
  return run;
}

std::string compare_markdown(const std::vector<BenchRun>& runs) {
  std::string out = "Columns (ratio: the column's mean / the first column's mean):\n\n";
  for (size_t c = 0; c < runs.size(); ++c)
    out += fmt::format("- `{}` ({}): {}\n", runs[c].label, runs[c].path, runs[c].description);
  out += "\n| test | depth | unit |";
  std::string rule = "|---|---|---|";
  for (size_t c = 0; c < runs.size(); ++c) {
    out += fmt::format(" {} |", runs[c].label);
    rule += "---|";
    if (c > 0) out += fmt::format(" {} / {} |", runs[c].label, runs[0].label), rule += "---|";
  }
  out += "\n" + rule + "\n";
  for (const BenchRow& k : all_keys(runs)) {
    out += fmt::format("| {} | {} | {} |", k.test, k.depth, k.unit);
    const BenchRow* first = find(runs[0], k);
    for (size_t c = 0; c < runs.size(); ++c) {
      const BenchRow* r = find(runs[c], k);
      out += r ? fmt::format(" {:.2f} ± {:.2f} |", r->mean, r->std) : std::string(" - |");
      if (c > 0) out += fmt::format(" {} |", r && first ? ratio_text(r->mean, first->mean) : "-");
    }
    out += "\n";
  }
  return out;
}

Image compare_chart(const std::vector<BenchRun>& runs) {
  std::vector<const BenchRow*> rows;  // the first run's tok/s rows
  for (const BenchRow& r : runs.at(0).rows)
    if (r.unit == "tok/s" && r.mean > 0) rows.push_back(&r);
  if (rows.empty()) throw InputError(fmt::format("{}: no tok/s rows to chart", runs[0].path));
  constexpr Rgb kPalette[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                              {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127}};
  constexpr Rgb kInk{20, 20, 20}, kGrid{200, 200, 200};
  constexpr int kMargin = 20, kText = 2, kBar = 18, kGap = 14, kLine = 22;
  const int n = static_cast<int>(runs.size());
  std::vector<std::string> labels;
  size_t label_chars = 0;
  double max_ratio = 1.0;
  for (const BenchRow* r : rows) {
    labels.push_back(fmt::format("{} @ {}", r->test, r->depth));
    label_chars = std::max(label_chars, labels.back().size());
    for (const BenchRun& run : runs)
      if (const BenchRow* o = find(run, *r)) max_ratio = std::max(max_ratio, o->mean / r->mean);
  }
  const int label_w = Image::text_width(std::string(label_chars, ' '), kText) + 16;
  const int plot_x = kMargin + label_w, plot_w = 640, width = plot_x + plot_w + 110;
  const int legend_y = kMargin + 2 * kLine, plot_y = legend_y + n * kLine + kLine;
  const int group_h = n * kBar + kGap;
  const int height = plot_y + static_cast<int>(rows.size()) * group_h + 3 * kLine;
  Image img(width, height);
  img.text(kMargin, kMargin, fmt::format("tok/s relative to {}", runs[0].label), kInk, kText);
  for (int c = 0; c < n; ++c) {
    const int y = legend_y + c * kLine;
    img.fill_rect(kMargin, y, 14, 14, kPalette[c % 8]);
    std::string d =
        runs[static_cast<size_t>(c)].label + ": " + runs[static_cast<size_t>(c)].description;
    if (d.size() > 110) d = d.substr(0, 107) + "...";
    img.text(kMargin + 22, y + 3, d, kInk, 1);
  }
  // Grid: ticks every 0.25 up to the largest ratio; 1.0 darker.
  const double top = std::ceil(max_ratio * 1.05 * 4) / 4;
  const int plot_bottom = plot_y + static_cast<int>(rows.size()) * group_h;
  auto x_of = [&](double ratio) { return plot_x + static_cast<int>(ratio / top * plot_w); };
  const double step = top > 4 ? 1.0 : top > 2 ? 0.5 : 0.25;
  for (double t = 0; t <= top + 1e-9; t += step) {
    img.fill_rect(x_of(t), plot_y - 6, 1, plot_bottom - plot_y + 6, t == 1.0 ? kInk : kGrid);
    const std::string s = fmt::format("{:g}", t);
    img.text(x_of(t) - Image::text_width(s, kText) / 2, plot_bottom + 8, s, kInk, kText);
  }
  for (size_t g = 0; g < rows.size(); ++g) {
    const int y0 = plot_y + static_cast<int>(g) * group_h;
    img.text(kMargin, y0 + (n * kBar - 7 * kText) / 2, labels[g], kInk, kText);
    for (int c = 0; c < n; ++c) {
      const int y = y0 + c * kBar;
      const BenchRow* o = find(runs[static_cast<size_t>(c)], *rows[g]);
      if (!o) {
        img.text(plot_x + 4, y + 5, "n/a", kInk, 1);
        continue;
      }
      const double ratio = o->mean / rows[g]->mean;
      img.fill_rect(plot_x, y + 2, x_of(ratio) - plot_x, kBar - 4, kPalette[c % 8]);
      img.text(x_of(ratio) + 4, y + 5, ratio_text(o->mean, rows[g]->mean), kInk, 1);
    }
  }
  return img;
}

int run_bench_compare(const std::vector<std::string>& files, const std::string& png) {
  std::vector<BenchRun> runs;
  for (const std::string& f : files) runs.push_back(read_bench_json(f));
  // Two files of the same name in different folders: label them by position too.
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (runs[j].label == runs[i].label) {
        runs[i].label += fmt::format("#{}", i + 1);
        break;
      }
  const Image chart = png.empty() ? Image(1, 1) : compare_chart(runs);
  fmt::print("{}", compare_markdown(runs));
  if (!png.empty()) {
    write_file_atomic(png, chart.png());
    fmt::print("\nchart: {}\n", png);
  }
  return 0;
}

}  // namespace kvz::cli
