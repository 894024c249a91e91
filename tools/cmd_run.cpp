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

#ifndef KVZ_DEMO_DIR
#define KVZ_DEMO_DIR "tools/data/demo"
#endif

namespace kvz::cli {
namespace {

struct DemoQuery {
  std::string question, reference;
};

std::vector<DemoQuery> demo_queries(size_t n) {
  auto j = nlohmann::json::parse(read_file(std::string(KVZ_DEMO_DIR) + "/questions.json"));
  std::vector<DemoQuery> out;
  for (const auto& q : j["questions"]) {
    if (out.size() == n) break;
    out.push_back({q["question"].get<std::string>(), q["answers"][0].get<std::string>()});
  }
  return out;
}

PruneLevel parse_level(const std::string& s) {
  if (s == "pair-uniform") return PruneLevel::kPairUniform;
  if (s == "head") return PruneLevel::kHead;
  return PruneLevel::kPair;
}

std::string one_line(std::string s) {
  for (char& ch : s)
    if (ch == '\n' || ch == '\r') ch = ' ';
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  return s.size() > 100 ? s.substr(0, 97) + "..." : s;
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

int run_run(const RunArgs& a) {
  bool demo = a.context_file.empty() && a.queries.empty() && a.load_cache.empty();
  Loaded l = load(a.model.empty() ? default_model_path() : a.model);
  std::vector<DemoQuery> queries;
  if (demo) {
    queries = demo_queries(5);
    fmt::print(
        "kvzip demo: SmolLM2 answers questions about a bundled {} (SQuAD 'Normans') from its full "
        "and its KVzip-compressed KV cache (ratio {}).\n\n",
        "2,000-token Wikipedia text", a.ratio);
  }
  for (const auto& q : a.queries) queries.push_back({q, ""});
  if (queries.empty()) throw InputError("no queries (-q) given");
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

  SessionOptions so;
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
  std::optional<KvzapModel> zm;
  if (!a.kvzap.empty()) {
    if (!a.load_cache.empty()) throw InputError("--kvzap and --load-cache do not combine");
    zm = KvzapModel::load(a.kvzap);
    zs = std::make_unique<Session>(*l.model, so);
    answer = zs.get();
  }
  if (!a.load_cache.empty()) {
    s.load_cache(a.load_cache);
    fmt::print("loaded {} ({} context tokens, {} of KV)\n", a.load_cache, s.n_context(),
               human_bytes(static_cast<double>(s.cache().bytes_in_use())));
  } else {
    std::string context = read_file(
        a.context_file.empty() ? std::string(KVZ_DEMO_DIR) + "/context.txt" : a.context_file);
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
    for (const auto& q : queries) full.push_back(s.generate(q.question, go));
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
  const std::string label = zs ? fmt::format("kvzap tau {:.2f}:", a.kvzap_threshold)
                               : fmt::format("{} ratio {:.2f}:", a.method, a.ratio);

  int same = 0;
  for (size_t i = 0; i < queries.size(); ++i) {
    fmt::print("Q{}: {}\n", i + 1, queries[i].question);
    if (!queries[i].reference.empty()) fmt::print("  reference:        {}\n", queries[i].reference);
    if (!full.empty()) fmt::print("  full cache:       {}\n", one_line(full[i].text));
    fmt::print("  {:17} {}\n", label, one_line(comp[i].text));
    if (!full.empty() && full[i].tokens == comp[i].tokens) ++same;
  }
  auto decode_tps = [](const std::vector<GenerateResult>& rs) {
    double toks = 0, ms = 0;
    for (const auto& r : rs) toks += static_cast<double>(r.tokens.size()), ms += r.decode_ms;
    return ms > 0 ? toks / ms * 1e3 : 0.0;
  };
  fmt::print("\n");
  if (!full.empty()) {
    fmt::print("answers identical to the full cache: {}/{}\n", same, queries.size());
    fmt::print("KV cache: {} -> {} ({:.1f}% of bytes; {:.1f}% of context pairs kept)\n",
               human_bytes(static_cast<double>(bytes_full)),
               human_bytes(static_cast<double>(c.prune.bytes_after)),
               100.0 * static_cast<double>(c.prune.bytes_after) / static_cast<double>(bytes_full),
               100.0 * c.prune.kept_fraction);
    fmt::print(
        "time: prefill {:.0f} ms ({} tokens, {:.1f} tok/s) | scoring {:.0f} ms | pruning {:.0f} "
        "ms (kvzap: its prefill)\n",
        prefill_ms, s.n_prefix() + s.n_context(),
        static_cast<double>(s.n_prefix() + s.n_context()) / std::max(prefill_ms, 1e-3) * 1e3,
        c.score_ms, c.prune.ms);
    fmt::print("decode: full cache {:.1f} tok/s | compressed {:.1f} tok/s\n", decode_tps(full),
               decode_tps(comp));
  } else {
    fmt::print("decode: {:.1f} tok/s\n", decode_tps(comp));
  }
  fmt::print("device: {} ({})\n", l.device->caps().name, l.device->caps().driver);
  return 0;
}

int run_compress(const CompressArgs& a) {
  Loaded l = load(a.model.empty() ? default_model_path() : a.model);
  SessionOptions so;
  so.score_chunk = a.chunk;
  Session s(*l.model, so);
  Progress bar("prefill", "tok");
  s.prefill(read_file(a.context_file), bar.fn());
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
