// `kvzip eval`: accuracy against kept ratio for KVzip and the baselines in the query-agnostic
// multi-query protocol (ALGORITHMS.md 5.1): per sample one prefill, one KVzip scoring pass and
// one observation of the first query (query-aware baselines), then every (method, ratio) pruned
// from the retained full cache and every query answered from it (tools/). kvzip_head (--level
// head) prunes whole heads by per-model head scores computed once (ALGORITHMS.md 2.6).
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "kvzip/baselines.h"
#include "kvzip/expected_attention.h"
#include "runtime/atomic_file.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/eval_dump.h"
#include "tools/eval_kvzap.h"
#include "tools/eval_methods.h"
#include "tools/eval_report.h"
#include "tools/eval_tasks.h"

namespace kvz::cli {
namespace {

// The observation window: the first query's prompt, and with --oracle-window (debug) its first
// gold answer in quotes after it, as the model would have generated it.
std::vector<int32_t> window_tokens(const Session& s, const EvalQuery& query, bool oracle) {
  std::vector<int32_t> t = query_prompt(s, query);
  if (oracle && !query.answers.empty()) {
    std::vector<int32_t> a =
        s.model().tokenizer().encode("\"" + query.answers[0] + "\"", false, false);
    t.insert(t.end(), a.begin(), a.end());
  }
  return t;
}

// --dump-kept (debug): after a prune, how many (layer, KV head) pairs still hold each context
// token from 32 tokens before the first query's first gold answer (the key, for `kv`) to 4 after
// it, read back from the cache's positions, and the kept count per layer and head over the
// answer's tokens. Nothing is written when the answer is not in the context (nor for KVzap cells).
void dump_kept(Session& s, const std::string& path, const EvalSample& sample, int index,
               const std::string& method, double ratio, const std::string& window) {
  const EvalQuery& q = sample.queries.at(0);
  if (q.answers.empty()) return;
  const Tokenizer& tok = s.model().tokenizer();
  const std::vector<int32_t> ctx = tok.encode(sample.context, false, false);
  if (static_cast<int64_t>(ctx.size()) != s.n_context()) return;
  // Context token j spells bytes [off[j], off[j + 1]) of its pieces put together.
  std::string text;
  std::vector<size_t> off(ctx.size() + 1, 0);
  for (size_t j = 0; j < ctx.size(); ++j) {
    text += tok.token_piece(ctx[j]);
    off[j + 1] = text.size();
  }
  const size_t at = text.find(q.answers[0]);
  if (at == std::string::npos) return;
  int64_t a0 = -1, a1 = -1;
  const size_t end = at + q.answers[0].size();
  for (size_t j = 0; j < ctx.size(); ++j)
    if (off[j + 1] > at && off[j] < end) {
      if (a0 < 0) a0 = static_cast<int64_t>(j);
      a1 = static_cast<int64_t>(j) + 1;
    }
  if (a0 < 0) return;
  const int64_t lo = std::max<int64_t>(0, a0 - 32),
                hi = std::min<int64_t>(static_cast<int64_t>(ctx.size()), a1 + 4);
  const ModelConfig& c = s.model().config();
  std::vector<int> count(static_cast<size_t>(hi - lo), 0);
  nlohmann::json per_layer = nlohmann::json::array();
  for (int il = 0; il < c.n_layers; ++il) {
    nlohmann::json heads = nlohmann::json::array();
    for (const HeadRows& r : s.cache().read_layer(il)) {
      int in_answer = 0;
      for (int32_t p : r.pos) {
        const int64_t j = p - s.n_prefix();
        if (j >= lo && j < hi) ++count[static_cast<size_t>(j - lo)];
        in_answer += j >= a0 && j < a1;
      }
      heads.push_back(in_answer);
    }
    per_layer.push_back(heads);
  }
  nlohmann::json tokens = nlohmann::json::array();
  for (int64_t j = lo; j < hi; ++j) tokens.push_back(tok.token_piece(ctx[static_cast<size_t>(j)]));
  nlohmann::json out = {{"sample", index},
                        {"method", method},
                        {"ratio", ratio},
                        {"answer", q.answers[0]},
                        {"first", lo},
                        {"answer_tokens", nlohmann::json::array({a0, a1})},
                        {"pairs", c.n_layers * c.n_kv_heads},
                        {"tokens", tokens},
                        {"kept_pairs", count},
                        {"answer_kept_per_layer_head", per_layer}};
  if (!window.empty()) out["window"] = window;
  append_file_atomic(path,
                     out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n');
}

using PhaseTimes = std::vector<std::pair<std::string, double>>;

// --timings: where a sample's seconds went, on one line.
void print_phase_times(int index, const PhaseTimes& times) {
  std::string line = fmt::format("sample {}:", index);
  double total = 0;
  for (const auto& [name, sec] : times) {
    line += fmt::format(" {} {:.2f} s,", name, sec);
    total += sec;
  }
  fmt::print(stderr, "{} total {:.2f} s\n", line, total);
}

struct SampleRun {
  const EvalArgs& a;
  const EvalSample& sample;
  int index;
  std::string model_name;
  std::string kv_types;  // cache_type_label() of the run: empty for f16
  const std::set<RowKey>& done;
  Progress& bar;
  int64_t& cells_done;
  int64_t cells_total;
  const std::vector<std::string>& kvzap_methods;
  const KvzapEval* kvzap;
  const HeadScores* head_scores;  // kvzip_head's
};

GenerateOptions answer_options(const EvalArgs& a) {
  GenerateOptions g;
  g.max_new_tokens = a.max_new_tokens > 0 ? a.max_new_tokens : task_max_new_tokens(a.task);
  return g;
}

EvalRow cell_row(const SampleRun& r, const std::string& method, double ratio, double kept) {
  EvalRow row;
  row.task = r.a.task;
  row.model = r.model_name;
  row.kv_types = r.kv_types;
  row.sample = r.index;
  row.sample_id = r.sample.id;
  row.method = method;
  row.ratio = ratio;
  row.kept_fraction = kept;
  row.n_queries = static_cast<int>(r.sample.queries.size());
  return row;
}

// Scores the answers to the sample's queries, in query order, into row.
void score_answers(EvalRow& row, const SampleRun& r, std::span<const GenerateResult> answers) {
  for (size_t i = 0; i < answers.size(); ++i) {
    const double ok = score_prediction(r.sample.queries[i], answers[i].text);
    row.ok.push_back(ok);
    row.correct += ok;
    row.predictions.push_back(answers[i].text);
  }
}

// With --batch >= 2 every cell of a sample keeps a copy of its pruned cache, and all their
// answers share each batched decode step (one forward over every cell's queries).
struct PendingCell {
  EvalRow row;
  std::unique_ptr<KvCache> cache;
  double prune_ms = 0;
};

// Adds the answers' phases to `times`: their cache copies and prompts, then the decode steps.
void answer_pending(Session& s, const SampleRun& r,
                    const std::vector<std::vector<int32_t>>& queries,
                    std::vector<PendingCell>& cells,
                    const std::function<void(EvalRow, double)>& emit, PhaseTimes& times) {
  if (cells.empty()) return;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<const KvCache*> from;
  for (const PendingCell& c : cells)
    for (const std::vector<int32_t>& q : queries) {
      prompts.push_back(q);
      from.push_back(c.cache.get());
    }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<GenerateResult> answers = s.generate_batch(prompts, answer_options(r.a), from);
  double prompt_ms = 0, decode_ms = 0, prune_ms = 0;
  for (const GenerateResult& g : answers) {
    prompt_ms += g.prefill_ms;
    decode_ms += g.decode_ms;
  }
  for (const PendingCell& c : cells) prune_ms += c.prune_ms;
  times.emplace_back("prune", prune_ms / 1000);
  times.emplace_back(fmt::format("{} answers: prompts", answers.size()), prompt_ms / 1000);
  times.emplace_back("decode", decode_ms / 1000);
  // The shared answer time is split evenly over the cells.
  const double share =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
      static_cast<double>(cells.size());
  const size_t nq = r.sample.queries.size();
  for (size_t i = 0; i < cells.size(); ++i) {
    score_answers(cells[i].row, r, std::span(answers).subspan(i * nq, nq));
    cells[i].cache.reset();
    emit(std::move(cells[i].row), cells[i].prune_ms + share);
  }
  cells.clear();
}

void run_sample(const Model& model, const SampleRun& r, const std::vector<MethodInfo>& methods) {
  auto need = [&](const std::string& m, double ratio) {
    return !r.done.count(row_key(r.index, m, ratio));
  };
  std::vector<std::pair<const MethodInfo*, double>> todo;
  for (const MethodInfo& m : methods)
    for (double ratio : r.a.ratios)
      if (need(m.name, ratio)) todo.emplace_back(&m, ratio);
  const bool need_full = need("full", 1.0);
  std::vector<std::pair<std::string, KvzapCell>> kvzap_todo;
  for (const std::string& m : r.kvzap_methods)
    for (const KvzapCell& c : r.kvzap->cells(m))
      if (need(m, c.key)) kvzap_todo.emplace_back(m, c);
  if (todo.empty() && kvzap_todo.empty() && !need_full) return;

  SessionOptions so = session_options();
  so.score_chunk = r.a.chunk;
  so.max_batch = r.a.batch;
  if (r.sample.reasoning) so.instruction = kInstructionReasoning;
  Session s(model, so);
  s.set_retain(true);
  std::optional<QueryStats> stats;
  for (const auto& [m, ratio] : todo)
    if (m->needs_query_stats && !stats) {
      const ModelConfig& c = model.config();
      stats.emplace(c.n_layers, c.n_heads, c.head_dim, rope_specs(model));
    }
  PhaseTimes times;
  auto phase = [&](const std::string& name, auto&& fn) {
    const auto t = std::chrono::steady_clock::now();
    fn();
    times.emplace_back(name,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
  };
  phase(stats ? "prefill+query stats" : "prefill",
        [&] { prefill(s, r.sample.context, stats ? &*stats : nullptr); });
  double cells_s = 0;
  std::function<void(EvalRow, double)> emit = [&](EvalRow row, double ms) {
    row.ms = ms;
    cells_s += ms / 1000;
    append_row(r.a.out, row);
    r.bar(++r.cells_done, r.cells_total);
  };
  auto t0 = std::chrono::steady_clock::now();
  auto ms_since = [](auto t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
  };
  const bool batched = r.a.batch >= 2;
  std::vector<std::vector<int32_t>> queries;  // the sample's query prompts, for every cell
  for (const EvalQuery& q : r.sample.queries) queries.push_back(query_prompt(s, q));
  std::vector<PendingCell> pending;
  // A cell from the session's current cache: answered now, or kept for answer_pending().
  auto cell = [&](EvalRow row) {
    if (!batched) {
      score_answers(row, r, s.generate_batch(queries, answer_options(r.a)));
      emit(std::move(row), ms_since(t0));
      return;
    }
    pending.push_back({std::move(row), s.copy_cache(), ms_since(t0)});
  };
  if (need_full) cell(cell_row(r, "full", 1.0, 1.0));  // before any pruning

  // Scores of every method that still has work, all from the full cache.
  Scores kvzip;
  std::vector<int32_t> window;  // the observation window, once a query-aware method needs it
  std::vector<ObservedLayer> obs;
  std::map<std::string, Scores> scores;
  for (const auto& item : todo) {
    const MethodInfo* m = item.first;  // a plain name: the lambdas below capture it
    if (scores.count(m->name) || m->budget == Budget::kHead) continue;  // kHead: r.head_scores
    if (m->needs_kvzip && kvzip.empty()) {
      CompressorOptions co;
      co.chunk = r.a.chunk;
      phase("kvzip scoring", [&] { kvzip = s.score(co); });
    }
    if (m->query_aware && obs.empty()) {
      window = window_tokens(s, r.sample.queries.at(0), r.a.oracle_window);
      phase("observe", [&] { obs = observe_first_query(s, window); });
    }
    phase(m->name, [&] {
      scores[m->name] = method_scores(s, *m, kvzip, obs, stats ? &*stats : nullptr,
                                      r.a.seed * 7919 + static_cast<uint64_t>(r.index));
    });
  }
  obs.clear();
  for (const auto& [m, ratio] : todo) {
    t0 = std::chrono::steady_clock::now();
    if (m->budget != Budget::kHead) s.set_scores(scores[m->name]);
    PruneResult pr = s.prune(ratio, prune_level(m->budget), r.head_scores);
    if (!r.a.dump_kept.empty())
      dump_kept(s, r.a.dump_kept, r.sample, r.index, m->name, ratio,
                m->query_aware ? s.model().tokenizer().decode(window) : std::string());
    cell(cell_row(r, m->name, ratio, pr.kept_fraction));
  }
  for (const auto& [m, c] : kvzap_todo) {  // eval_kvzap.h: threshold + window rule
    t0 = std::chrono::steady_clock::now();
    s.set_scores(r.kvzap->scores(m, r.index));
    PruneResult pr = s.prune_threshold(c.threshold, r.kvzap->window());
    EvalRow row = cell_row(r, m, c.key, pr.kept_fraction);
    row.threshold = c.threshold;
    cell(std::move(row));
  }
  if (batched)
    answer_pending(s, r, queries, pending, emit, times);
  else
    times.emplace_back("prune+answer", cells_s);
  if (r.a.timings) print_phase_times(r.index, times);
}

// kvzip_head's head scores (ALGORITHMS.md 2.6): --head-scores FILE, else S[l, h] = max over
// positions of KVzip's pair scores of the first sample, computed once and used for every sample.
HeadScores eval_head_scores(const Model& model, const EvalArgs& a, const EvalSample& first) {
  HeadScores hs;
  if (!a.head_scores.empty()) {
    hs = HeadScores::load(a.head_scores);
    if (hs.model_identity != model.identity())
      throw InputError(fmt::format("{}: head scores of model '{}', not of '{}'", a.head_scores,
                                   hs.model_identity, model.identity()));
    fmt::print(stderr, "kvzip_head: head scores from {}\n", a.head_scores);
  } else {
    SessionOptions so = session_options();
    so.score_chunk = a.chunk;
    if (first.reasoning) so.instruction = kInstructionReasoning;
    Session s(model, so);
    s.prefill(first.context);
    CompressorOptions co;
    co.chunk = a.chunk;
    hs = HeadScores::from(s.score(co), model.identity());
    fmt::print(stderr,
               "kvzip_head: head scores computed once from sample 0 ({} context tokens) and used "
               "for every sample (--head-scores FILE: from a calibration context instead)\n",
               s.n_context());
  }
  if (!a.save_head_scores.empty()) {
    hs.save(a.save_head_scores);
    fmt::print(stderr, "kvzip_head: head scores written to {}\n", a.save_head_scores);
  }
  return hs;
}

std::string default_out(const EvalArgs& a) { return fmt::format("eval-{}.jsonl", a.task); }

}  // namespace

int run_eval(const EvalArgs& in) {
  EvalArgs a = in;
  if (!a.samples_file.empty()) a.task = "samples";
  if (a.out.empty()) a.out = default_out(a);
  std::vector<MethodInfo> methods;
  std::vector<std::string> names, kvzap_methods;
  for (const std::string& m : a.methods) {
    if (is_kvzap_method(m)) {
      kvzap_methods.push_back(m);
      names.push_back(m);
      continue;
    }
    methods.push_back(method_info(a.level == "head" && m == "kvzip" ? "kvzip_head" : m));
    names.push_back(methods.back().name);
  }
  for (double r : a.ratios) check_ratio(r);
  // --report reads only the rows, which name the model by its file name: the file need not exist.
  const std::string model_path = a.report_only ? a.model : resolve_model(a.model);
  const std::string model_name = std::filesystem::path(model_path).filename().string();
  // Rows record a non-f16 K/V cache, so one file never mixes (or resumes across) storage types.
  const std::string kv_types = cache_type_label(session_options());
  std::vector<double> table_ratios = a.ratios;

  if (!a.report_only) {
    Loaded l = load(model_path);
    TaskOptions to;
    to.task = a.task;
    to.num = a.num;
    to.length = a.length;
    to.queries = a.queries;
    to.max_new_tokens = a.max_new_tokens;
    to.seed = a.seed;
    to.vary_haystack = a.vary_haystack;
    to.data_dir = a.data_dir.empty() ? data_dir("eval") : a.data_dir;
    to.samples_file = a.samples_file;
    std::vector<EvalSample> samples = make_task(to, l.model->tokenizer());
    if (!a.dump_samples.empty()) {  // the samples as token ids (and our scores), no evaluation
      dump_samples(*l.model, samples,
                   {a.dump_samples, a.dump_scores, a.task, a.chunk, a.max_new_tokens});
      fmt::print("wrote {} samples to {}\n", samples.size(), a.dump_samples);
      return 0;
    }
    std::optional<KvzapEval> kvzap;
    if (!kvzap_methods.empty()) {
      KvzapEvalOptions ko{a.kvzap_dir.empty() ? data_dir("kvzap") : a.kvzap_dir,
                          std::filesystem::path(model_path).stem().string(), a.kvzap_threshold,
                          a.kvzap_window};
      kvzap.emplace(*l.model, samples, kvzap_methods, a.ratios, ko);
      if (a.kvzap_threshold && methods.empty()) table_ratios.clear();  // only the achieved keys
      for (double k : kvzap->keys())
        if (std::find(table_ratios.begin(), table_ratios.end(), k) == table_ratios.end())
          table_ratios.push_back(k);
    }
    std::set<RowKey> done;
    for (const EvalRow& row : read_rows(a.out, a.task, model_name, kv_types))
      done.insert(row_key(row.sample, row.method, row.ratio));
    bool need_heads = false;  // some kvzip_head row still to run
    for (const MethodInfo& m : methods)
      for (int i = 0; i < static_cast<int>(samples.size()) && m.budget == Budget::kHead; ++i)
        for (double r : a.ratios) need_heads = need_heads || !done.count(row_key(i, m.name, r));
    std::optional<HeadScores> heads;
    if (need_heads) heads = eval_head_scores(*l.model, a, samples.at(0));
    const int64_t per_sample = 1 + static_cast<int64_t>(names.size() * a.ratios.size());
    const int64_t total = per_sample * static_cast<int64_t>(samples.size());
    int64_t cells = 0;
    for (int i = 0; i < static_cast<int>(samples.size()); ++i)
      for (const std::string& m : names)
        for (double r : a.ratios) cells += done.count(row_key(i, m, r));
    for (int i = 0; i < static_cast<int>(samples.size()); ++i)
      cells += done.count(row_key(i, "full", 1.0));
    fmt::print(
        stderr,
        "eval: task {} ({} samples, {} queries in all), {} methods x {} ratios; {} of {} runs "
        "already in {}\n",
        a.task, samples.size(),
        [&] {
          size_t n = 0;
          for (auto& s : samples) n += s.queries.size();
          return n;
        }(),
        names.size(), a.ratios.size(), cells, total, a.out);
    Progress bar("eval", "runs");
    for (int i = 0; i < static_cast<int>(samples.size()); ++i) {
      SampleRun r{a,
                  samples[static_cast<size_t>(i)],
                  i,
                  model_name,
                  kv_types,
                  done,
                  bar,
                  cells,
                  total,
                  kvzap_methods,
                  kvzap ? &*kvzap : nullptr,
                  heads ? &*heads : nullptr};
      run_sample(*l.model, r, methods);
    }
  }

  std::vector<EvalRow> rows = read_rows(a.out, a.task, model_name, kv_types);
  fmt::print("\n## {} on {}{} ({})\n\n{}", a.task, model_name,
             kv_types.empty() ? "" : ", " + kv_types + " cache", a.out,
             markdown_table(rows, names, table_ratios));
  if (std::string split = query_split_table(rows, names, table_ratios); !split.empty())
    fmt::print("\n### First query and later queries\n\n{}", split);
  std::string png =
      a.plot.empty() ? std::filesystem::path(a.out).replace_extension(".png").string() : a.plot;
  std::string why;
  if (plot_png(rows, names, table_ratios, fmt::format("{} / {}", a.task, model_name), png, why))
    fmt::print("\nplot: {}\n", png);
  else
    fmt::print("\nplot skipped: {}\n", why);
  return 0;
}

}  // namespace kvz::cli
