// JSON-lines results, markdown table and gnuplot plot of `kvzip eval` (tools/).
#include "tools/eval_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/atomic_file.h"
#include "runtime/error.h"

namespace kvz::cli {
namespace {

std::string ratio_str(double r) { return fmt::format("{:.4g}", r); }

// The header and rule of a table with one column per ratio.
std::string table_head(const std::vector<double>& ratios) {
  std::string out = "| method |", rule = "|---|";
  for (double r : ratios) {
    out += fmt::format(" {} |", ratio_str(r));
    rule += "---|";
  }
  return out + "\n" + rule + "\n";
}

// Micro-averaged accuracy of `method` at `ratio` and of the full cache over the samples both have.
struct Cell {
  double correct = 0, full_correct = 0;
  int total = 0, full_total = 0, samples = 0;
  double kept = 0;
  bool empty() const { return total == 0; }
  double acc() const { return total ? 100.0 * correct / total : 0.0; }
  double full_acc() const { return full_total ? 100.0 * full_correct / full_total : 0.0; }
  // Relative to the full cache; when the full cache scores 0 report 100 if the method also does.
  double rel() const {
    return full_correct > 0 ? 100.0 * correct / full_correct : (correct > 0 ? 0.0 : 100.0);
  }
};

Cell cell(const std::vector<EvalRow>& rows, const std::string& method, double ratio) {
  std::map<int, const EvalRow*> full;
  for (const EvalRow& r : rows)
    if (r.method == "full") full[r.sample] = &r;
  Cell c;
  const std::string rs = ratio_str(ratio);
  for (const EvalRow& r : rows) {
    if (r.method != method || ratio_str(r.ratio) != rs) continue;
    auto f = full.find(r.sample);
    if (f == full.end()) continue;
    c.correct += r.correct;
    c.total += r.n_queries;
    c.full_correct += f->second->correct;
    c.full_total += f->second->n_queries;
    c.kept += r.kept_fraction;
    c.samples++;
  }
  if (c.samples) c.kept /= c.samples;
  return c;
}

}  // namespace

RowKey row_key(int sample, const std::string& method, double ratio) {
  return {sample, method, method == "full" ? "1" : ratio_str(ratio)};
}

std::vector<EvalRow> read_rows(const std::string& path, const std::string& task,
                               const std::string& model, const std::string& kv_types) {
  std::vector<EvalRow> rows;
  std::ifstream f(path);
  if (!f) return rows;
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      EvalRow r;
      r.task = j.at("task").get<std::string>();
      r.model = j.at("model").get<std::string>();
      r.kv_types = j.value("kv_types", "");
      if (r.task != task || r.model != model || r.kv_types != kv_types) continue;
      r.sample = j.at("sample").get<int>();
      r.sample_id = j.value("sample_id", "");
      r.method = j.at("method").get<std::string>();
      r.ratio = j.at("ratio").get<double>();
      r.kept_fraction = j.value("kept_fraction", r.ratio);
      r.n_queries = j.at("n_queries").get<int>();
      r.correct = j.at("correct").get<double>();
      r.ok = j.value("ok", std::vector<double>{});
      r.predictions = j.value("predictions", std::vector<std::string>{});
      r.ms = j.value("ms", 0.0);
      // A threshold of +-inf (keep all / none) is written as a string; files written before that
      // hold null there (the sign is lost: left unset).
      if (const auto t = j.find("threshold"); t != j.end() && t->is_string())
        r.threshold = std::stod(t->get<std::string>());
      else if (t != j.end() && !t->is_null())
        r.threshold = t->get<double>();
      rows.push_back(std::move(r));
    } catch (const std::exception& e) {  // json's errors, or a threshold string stod rejects
      fmt::print(stderr, "{}:{}: skipping unreadable row ({})\n", path, lineno, e.what());
    }
  }
  return rows;
}

namespace {
// Integral scores stay integers in the file (0/1 tasks read as before).
nlohmann::json number(double x) {
  if (x == std::floor(x) && std::abs(x) < 1e15) return static_cast<int64_t>(x);
  return x;
}
}  // namespace

void append_row(const std::string& path, const EvalRow& r) {
  nlohmann::json ok = nlohmann::json::array();
  for (double x : r.ok) ok.push_back(number(x));
  nlohmann::json j = {{"task", r.task},
                      {"model", r.model},
                      {"sample", r.sample},
                      {"sample_id", r.sample_id},
                      {"method", r.method},
                      {"ratio", r.ratio},
                      {"kept_fraction", r.kept_fraction},
                      {"n_queries", r.n_queries},
                      {"correct", number(r.correct)},
                      {"ok", ok},
                      {"predictions", r.predictions},
                      {"ms", r.ms}};
  if (r.threshold) {  // JSON has no infinity: "inf" / "-inf"
    if (std::isfinite(*r.threshold))
      j["threshold"] = *r.threshold;
    else
      j["threshold"] = *r.threshold > 0 ? "inf" : "-inf";
  }
  if (!r.kv_types.empty()) j["kv_types"] = r.kv_types;
  // Invalid UTF-8 in a prediction (a token cut mid-character) is replaced, not thrown on.
  append_file_atomic(path, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n');
}

std::string markdown_table(const std::vector<EvalRow>& rows,
                           const std::vector<std::string>& methods,
                           const std::vector<double>& ratios) {
  std::string out = table_head(ratios);
  const Cell full = cell(rows, "full", 1.0);
  const auto [flo, fhi] = wilson_interval(full.correct, full.total);
  out += fmt::format("| full cache | {:.1f} abs [{:.1f}, {:.1f}] ({} queries, {} samples) |",
                     full.acc(), 100 * flo, 100 * fhi, full.total, full.samples);
  for (size_t i = 1; i < ratios.size(); ++i) out += " |";
  out += "\n";
  for (const std::string& m : methods) {
    out += fmt::format("| {} |", m);
    for (double r : ratios) {
      const Cell c = cell(rows, m, r);
      const auto [lo, hi] = wilson_interval(c.correct, c.total);
      out += c.empty() ? " – |"
                       : fmt::format(" {:.1f} ({:.1f} [{:.1f}, {:.1f}]) |", c.rel(), c.acc(),
                                     100 * lo, 100 * hi);
    }
    out += "\n";
  }
  out +=
      "\nCells: accuracy relative to the full cache on the same samples, % (absolute accuracy, "
      "% [its 95 % Wilson interval]). Columns: requested kept ratio.\n";
  return out;
}

namespace {
// Summed scores and counts of the first query and of the later ones.
struct Split {
  double first = 0, later = 0;
  int n_first = 0, n_later = 0;
  void add(const EvalRow& r) {
    for (size_t q = 0; q < r.ok.size(); ++q) {
      (q ? later : first) += r.ok[q];
      ++(q ? n_later : n_first);
    }
  }
  std::string str() const {
    const auto pct = [](double k, int n) { return n ? fmt::format("{:.1f}", 100 * k / n) : "–"; };
    return fmt::format("{} / {}", pct(first, n_first), pct(later, n_later));
  }
};
}  // namespace

std::string query_split_table(const std::vector<EvalRow>& rows,
                              const std::vector<std::string>& methods,
                              const std::vector<double>& ratios) {
  std::map<int, const EvalRow*> full;
  for (const EvalRow& r : rows)
    if (r.method == "full" && r.ok.size() > 1) full[r.sample] = &r;
  if (full.empty()) return "";
  Split f;
  for (const auto& [s, r] : full) f.add(*r);
  std::string out = table_head(ratios);
  out += fmt::format("| full cache | {} ({} first, {} later queries) |", f.str(), f.n_first,
                     f.n_later);
  for (size_t i = 1; i < ratios.size(); ++i) out += " |";
  out += "\n";
  for (const std::string& m : methods) {
    out += fmt::format("| {} |", m);
    for (double ratio : ratios) {
      Split c;
      const std::string rs = ratio_str(ratio);
      for (const EvalRow& r : rows)
        if (r.method == m && ratio_str(r.ratio) == rs && full.count(r.sample)) c.add(r);
      out += c.n_first ? fmt::format(" {} |", c.str()) : " – |";
    }
    out += "\n";
  }
  out +=
      "\nCells: absolute accuracy on each sample's first query / on its later queries, %. "
      "Query-aware baselines observe the first query only.\n";
  return out;
}

std::pair<double, double> wilson_interval(double k, int n, double z) {
  if (n <= 0) return {0.0, 1.0};
  const double nn = n, p = k / nn, d = 1 + z * z / nn, c = (p + z * z / (2 * nn)) / d,
               h = z * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / d;
  return {std::max(0.0, c - h), std::min(1.0, c + h)};
}

bool plot_png(const std::vector<EvalRow>& rows, const std::vector<std::string>& methods,
              const std::vector<double>& ratios, const std::string& title, const std::string& png,
              std::string& why) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    why = "gnuplot not found (tools/setup.sh installs gnuplot-nox); no plot written";
    return false;
  }
  const std::string dat = png + ".dat", gp = png + ".gp";
  {
    std::ostringstream d;
    for (const std::string& m : methods) {
      d << "# " << m << "\n";
      for (double r : ratios) {
        const Cell c = cell(rows, m, r);
        if (!c.empty()) d << fmt::format("{} {:.3f} {:.4f}\n", r, c.rel(), c.kept);
      }
      d << "\n\n";
    }
    write_file_atomic(dat, d.str());
  }
  {
    std::ostringstream g;
    g << "set terminal pngcairo size 800,560 noenhanced\n"
      << "set output '" << png << "'\n"
      << "set title '" << title << "'\n"
      << "set xlabel 'KV cache ratio kept'\nset ylabel 'accuracy relative to full cache (%)'\n"
      << "set xrange [0:1.02]\nset yrange [0:*]\nset grid\nset key bottom right\n"
      << "plot ";
    for (size_t i = 0; i < methods.size(); ++i)
      g << (i ? ", " : "") << "'" << dat << "' index " << i
        << " using 1:2 with linespoints lw 2 title '" << methods[i] << "'";
    g << "\n";
    write_file_atomic(gp, g.str());
  }
  const std::string cmd = fmt::format("gnuplot '{}' 2>&1", gp);
  if (std::system(cmd.c_str()) != 0) {
    why = "gnuplot failed on " + gp;
    return false;
  }
  std::filesystem::remove(gp);
  return true;
}

}  // namespace kvz::cli
