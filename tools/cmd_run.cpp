// `kvzip run`: prefill a context once, answer each query from the full cache, compress with KVzip,
// answer again from the compressed cache, and report bytes and per-phase times (tools/).
// `kvzip compress`: prefill, score, prune and save the cache to a file.
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>

#include "kvzip/cache_file.h"
#include "kvzip/kvzap.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/eval_methods.h"
#include "tools/eval_tasks.h"

namespace kvz::cli {
namespace {

struct DemoQuery {
  std::string question;
  std::vector<std::string> references;  // empty for the user's own queries
};

// A file of the bundled demo (share/kvzip-vk/demo/).
std::string demo_file(const char* name) { return data_dir("demo") + "/" + name; }

// The demo's questions (share/kvzip-vk/demo/questions.json; SOURCE.md there says how they were
// chosen) with their reference answers.
std::vector<DemoQuery> demo_queries() {
  const std::string path = demo_file("questions.json");
  auto j = nlohmann::json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.contains("questions"))
    throw FormatError(path + ": not the demo's JSON");
  std::vector<DemoQuery> out;
  for (const auto& q : j["questions"])
    out.push_back(
        {q.at("question").get<std::string>(), q.at("answers").get<std::vector<std::string>>()});
  return out;
}

PruneLevel parse_level(const std::string& s) {
  if (s == "pair-uniform") return PruneLevel::kPairUniform;
  if (s == "head") return PruneLevel::kHead;
  return PruneLevel::kPair;
}

// The answer on one line, cut to max_chars (0 = whole) where it is longer.
std::string one_line(std::string s, int max_chars) {
  for (char& ch : s)
    if (ch == '\n' || ch == '\r') ch = ' ';
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  const auto n = static_cast<size_t>(max_chars);
  return max_chars > 0 && s.size() > n ? s.substr(0, n > 3 ? n - 3 : n) + "..." : s;
}

// Combinations refused before the model loads.
void check_run_args(const RunArgs& a) {
  const bool head = parse_level(a.level) == PruneLevel::kHead;
  if (head && a.head_scores.empty() && a.load_cache.empty())
    throw InputError("--level head needs --head-scores FILE");
  if (head && !a.save_head_scores.empty())
    throw InputError("--save-head-scores needs pair-level scoring (not --level head)");
  if (!a.context_file.empty() && a.queries.empty())
    throw InputError("--context needs at least one query (-q)");
  if (!a.load_cache.empty() && a.queries.empty())
    throw InputError("--load-cache needs at least one query (-q)");
  if (!a.kvzap.empty() &&
      (a.kvpress || head || !a.save_cache.empty() || !a.save_head_scores.empty()))
    throw InputError(
        "--kvzap does not combine with --kvpress, --level head, --save-cache or "
        "--save-head-scores (KVzap evicts online, no KVzip scores or cache)");
}

struct Compressed {
  PruneResult prune;
  double score_ms = 0;
};

Compressed compress(Session& s, double ratio, const std::string& level,
                    const std::string& head_file, int chunk, bool kvpress) {
  Compressed c;
  std::optional<HeadScores> hs;
  if (parse_level(level) == PruneLevel::kHead) {
    if (head_file.empty()) throw InputError("--level head needs --head-scores FILE");
    hs = HeadScores::load(head_file);
    if (hs->model_identity != s.model().identity())
      throw InputError(fmt::format("{}: head scores of model '{}', not of '{}'", head_file,
                                   hs->model_identity, s.model().identity()));
  } else {
    CompressorOptions co;
    co.chunk = chunk;
    if (kvpress) co.sinks = SinkPolicy::kKvpress;
    Progress bar("scoring", "tok");
    s.score(co, bar.fn());
    c.score_ms = s.score_ms();
  }
  c.prune =
      s.prune(ratio, kvpress ? PruneLevel::kKvpress : parse_level(level), hs ? &*hs : nullptr);
  return c;
}

// Head-level scores (ALGORITHMS.md 2.6) from this context's pair scores, saved for --level head.
void save_head_scores(const Session& s, const std::string& path) {
  if (path.empty()) return;
  if (s.scores().empty())
    throw InputError("--save-head-scores needs pair-level scoring (not --level head)");
  HeadScores::from(s.scores(), s.model().identity()).save(path);
  fmt::print("head scores of {} layers x {} KV heads written to {}\n", s.scores().n_layers,
             s.scores().n_kv_heads, path);
}

// Online KVzap (ALGORITHMS.md 3.4) instead of KVzip: a second session prefills the context with
// the surrogate on, so pairs are evicted while prefilling (and while decoding), no scoring pass.
Compressed prefill_kvzap(Session& zs, const KvzapModel& zm, const RunArgs& a,
                         const std::string& context) {
  KvzapOptions o;
  o.threshold = a.kvzap_threshold;
  o.window = a.kvzap_window;
  zs.set_kvzap(&zm, o);
  Progress bar("prefill+kvzap", "tok");
  zs.prefill(context, bar.fn());
  const ModelConfig& cfg = zs.model().config();
  const auto pairs = static_cast<double>(zs.n_context()) * cfg.n_layers * cfg.n_kv_heads;
  Compressed c;
  c.prune.kept_fraction = pairs > 0 ? 1.0 - static_cast<double>(zs.kvzap_evicted()) / pairs : 1.0;
  c.prune.bytes_after = zs.cache().bytes_in_use();
  c.prune.ms = zs.prefill_ms();
  return c;
}

// --method M other than kvzip (kvzip/baselines.h): M's scores of the prefilled context, pruned
// with M's budget as `kvzip eval` does; the query-aware methods observe the first query.
Compressed compress_with(Session& s, const MethodInfo& m, double ratio, const std::string& query,
                         const QueryStats* stats) {
  auto t0 = std::chrono::steady_clock::now();
  Scores kvzip;
  if (m.needs_kvzip) kvzip = s.score();
  std::vector<ObservedLayer> obs;
  if (m.query_aware) obs = observe_first_query(s, s.query_tokens(query));
  s.set_scores(method_scores(s, m, kvzip, obs, stats, 0));
  Compressed c;
  c.score_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  c.prune = s.prune(ratio, prune_level(m.budget));
  return c;
}

}  // namespace

namespace {

// What answered from the compressed cache, as the output labels it.
std::string method_label(const RunArgs& a, const Session& s) {
  if (!a.kvzap.empty()) return fmt::format("kvzap tau {:.2f}", a.kvzap_threshold);
  if (a.method != "kvzip") return fmt::format("{} ratio {:.2f}", a.method, a.ratio);
  if (!a.load_cache.empty())
    return fmt::format("cache file, {:.1f}% kept", 100.0 * s.kept_fraction());
  const char* method = a.kvpress ? "kvpress" : "kvzip";
  const std::string level = a.kvpress || a.level == "pair" ? "" : " " + a.level;
  return fmt::format("{}{} ratio {:.2f}", method, level, a.ratio);
}

double decode_tps(const std::vector<GenerateResult>& rs) {
  double toks = 0, ms = 0;
  for (const auto& r : rs) toks += static_cast<double>(r.tokens.size()), ms += r.decode_ms;
  return ms > 0 ? toks / ms * 1e3 : 0.0;
}

// Answers, each scored against its references where it has some (SQuAD's normalised containment,
// the eval metric), then the summary line.
void print_answers(const std::vector<DemoQuery>& qs, const std::vector<GenerateResult>& full,
                   const std::vector<GenerateResult>& comp, const std::string& label,
                   int max_chars) {
  int n_full = 0, n_comp = 0, same = 0;
  const bool scored = !qs.empty() && !qs[0].references.empty();
  auto mark = [&](const std::string& text, size_t i, int& n) {
    if (!scored) return std::string();
    const bool ok = answer_matches(text, qs[i].references);
    n += ok ? 1 : 0;
    return std::string(ok ? "[correct] " : "[wrong]   ");
  };
  const std::string lab = label + ":";
  for (size_t i = 0; i < qs.size(); ++i) {
    fmt::print("Q{}: {}\n", i + 1, qs[i].question);
    if (scored) {
      std::string refs;
      for (const auto& r : qs[i].references) refs += (refs.empty() ? "" : " | ") + r;
      fmt::print("  {:28} {}\n", "reference:", refs);
    }
    if (!full.empty())
      fmt::print("  {:28} {}{}\n", "full cache:", mark(full[i].text, i, n_full),
                 one_line(full[i].text, max_chars));
    fmt::print("  {:28} {}{}\n", lab, mark(comp[i].text, i, n_comp),
               one_line(comp[i].text, max_chars));
    if (!full.empty() && full[i].tokens == comp[i].tokens) ++same;
  }
  fmt::print("\n");
  const size_t n = qs.size();
  if (scored && !full.empty())
    fmt::print("correct: full cache {}/{}, compressed {}/{}, identical {}/{}\n", n_full, n, n_comp,
               n, same, n);
  else if (scored)
    fmt::print("correct: {}/{}\n", n_comp, n);
  else if (!full.empty())
    fmt::print("answers identical to the full cache: {}/{}\n", same, n);
}

}  // namespace

int run_run(const RunArgs& a) {
  check_run_args(a);
  // --method: kvzip (default; --level, --kvpress) or any other method of `kvzip eval`.
  const bool other = a.method != "kvzip";
  const MethodInfo method = method_info(a.method == "kvzip_head" ? "kvzip" : a.method);
  if (other && a.method == "kvzip_head" && a.level != "head")
    throw InputError("--method kvzip_head is --level head (give --head-scores FILE)");
  if (other && a.method != "kvzip_head") {
    if (!a.kvzap.empty() || !a.load_cache.empty() || a.kvpress || a.level != "pair")
      throw InputError(fmt::format(
          "--method {} does not combine with --kvzap, --load-cache, --kvpress or --level",
          a.method));
  }
  const bool demo = a.context_file.empty() && a.queries.empty() && a.load_cache.empty();
  const std::string model = resolve_model(a.model);
  std::vector<DemoQuery> queries;
  std::string context;
  if (demo) queries = demo_queries();
  // The demo, and -q without --context, ask about the demo's text.
  if (a.load_cache.empty())
    context = read_file(a.context_file.empty() ? demo_file("context.txt") : a.context_file);
  for (const auto& q : a.queries) queries.push_back({q, {}});
  std::optional<KvzapModel> zm;
  if (!a.kvzap.empty()) zm = KvzapModel::load(a.kvzap);

  Loaded l = load(model, a.ctx_size);
  if (demo)
    fmt::print(
        "kvzip demo: {} answers {} questions about a bundled 2,000-token Wikipedia text (SQuAD "
        "'Normans') from its full KV cache and from a KVzip-compressed one keeping {:.0f}% of the "
        "context's KV pairs; each answer is checked against SQuAD's reference answers.\n\n",
        l.model->config().name, queries.size(), 100 * a.ratio);

  SessionOptions so = session_options();
  so.score_chunk = a.chunk;
  Session s(*l.model, so);
  GenerateOptions go;
  go.max_new_tokens = a.max_new_tokens;
  std::vector<GenerateResult> full;
  size_t bytes_full = 0;
  double prefill_ms = 0;
  Compressed c;
  Session* answer = &s;  // the session the compressed answers come from
  std::unique_ptr<Session> zs;
  if (zm) {
    zs = std::make_unique<Session>(*l.model, so);
    answer = zs.get();
  }
  if (!a.load_cache.empty()) {
    s.load_cache(a.load_cache);
    fmt::print("loaded {} ({} context tokens, {:.1f}% of the context pairs kept, {} of KV)\n",
               a.load_cache, s.n_context(), 100.0 * s.kept_fraction(),
               human_bytes(static_cast<double>(s.cache().bytes_in_use())));
  } else {
    std::optional<QueryStats> stats;  // Expected Attention's prefill statistics
    if (method.needs_query_stats) {
      const ModelConfig& cfg = l.model->config();
      stats.emplace(cfg.n_layers, cfg.n_heads, cfg.head_dim, rope_specs(*l.model));
      prefill(s, context, &*stats);
    } else {
      Progress bar("prefill", "tok");
      s.prefill(context, bar.fn());
    }
    prefill_ms = s.prefill_ms();
    bytes_full = s.cache().bytes_in_use();
    Progress qbar("answering", "queries");
    for (const auto& q : queries) {
      full.push_back(s.generate(q.question, go));
      qbar(static_cast<int64_t>(full.size()), static_cast<int64_t>(queries.size()));
    }
    if (zs) {
      c = prefill_kvzap(*zs, *zm, a, context);
    } else if (other && a.method != "kvzip_head") {
      c = compress_with(s, method, a.ratio, queries[0].question, stats ? &*stats : nullptr);
    } else {
      c = compress(s, a.ratio, a.level, a.head_scores, a.chunk, a.kvpress);
    }
    if (!a.save_cache.empty()) s.save_cache(a.save_cache);
    save_head_scores(s, a.save_head_scores);
  }
  std::vector<GenerateResult> comp;
  for (const auto& q : queries) comp.push_back(answer->generate(q.question, go));
  print_answers(queries, full, comp, method_label(a, *answer), a.max_answer_chars);
  if (!full.empty()) {
    fmt::print("KV cache: {} -> {} ({:.1f}% of bytes; {:.1f}% of context pairs kept)\n",
               human_bytes(static_cast<double>(bytes_full)),
               human_bytes(static_cast<double>(c.prune.bytes_after)),
               100.0 * static_cast<double>(c.prune.bytes_after) / static_cast<double>(bytes_full),
               100.0 * c.prune.kept_fraction);
    const int64_t n_prefilled = s.n_prefix() + s.n_context();
    if (const std::string types = cache_type_label(so); !types.empty())
      fmt::print(
          "KV cache types {}: the compressed cache is {:.1f}% of the full f16 cache's bytes\n",
          types,
          100.0 * static_cast<double>(c.prune.bytes_after) /
              static_cast<double>(answer->cache().full_bytes(n_prefilled, true)));
    const std::string phases =
        zs ? fmt::format("prefill with KVzap eviction {:.0f} ms", c.prune.ms)
           : fmt::format("scoring {:.0f} ms | pruning {:.0f} ms", c.score_ms, c.prune.ms);
    fmt::print("time: prefill {:.0f} ms ({} tokens, {:.1f} tok/s) | {}\n", prefill_ms, n_prefilled,
               static_cast<double>(n_prefilled) / std::max(prefill_ms, 1e-3) * 1e3, phases);
    fmt::print("decode: full cache {:.1f} tok/s | compressed {:.1f} tok/s\n", decode_tps(full),
               decode_tps(comp));
  } else {
    fmt::print("decode: {:.1f} tok/s\n", decode_tps(comp));
  }
  fmt::print("device: {} ({})\n", l.device->caps().name, l.device->caps().driver);
  return 0;
}

int run_compress(const CompressArgs& a) {
  if (parse_level(a.level) == PruneLevel::kHead && a.head_scores.empty())
    throw InputError("--level head needs --head-scores FILE");
  if (parse_level(a.level) == PruneLevel::kHead && !a.save_head_scores.empty())
    throw InputError("--save-head-scores needs pair-level scoring (not --level head)");
  const std::string model = resolve_model(a.model);
  const std::string context = read_file(a.context_file);
  Loaded l = load(model, a.ctx_size);
  SessionOptions so = session_options();
  so.score_chunk = a.chunk;
  Session s(*l.model, so);
  Progress bar("prefill", "tok");
  s.prefill(context, bar.fn());
  size_t before = s.cache().bytes_in_use();
  Compressed c = compress(s, a.ratio, a.level, a.head_scores, a.chunk, false);
  s.save_cache(a.output);
  save_head_scores(s, a.save_head_scores);
  fmt::print("wrote {}: {} context tokens, KV {} -> {} ({:.1f}% of context pairs kept)\n", a.output,
             s.n_context(), human_bytes(static_cast<double>(before)),
             human_bytes(static_cast<double>(c.prune.bytes_after)), 100.0 * c.prune.kept_fraction);
  return 0;
}

}  // namespace kvz::cli
