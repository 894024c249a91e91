// `kvzip bench`: llama-bench style speed table — prompt processing and generation tokens/s at
// several context depths, then the KVzip phases (prefill, scoring, pruning, decode per ratio) and
// KV bytes — as markdown and optionally JSON, mean +- std over repetitions (tools/).
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include <CLI/CLI.hpp>

#include "runtime/atomic_file.h"
#include "tools/bench_compare.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace kvz::cli {
namespace {

// KVZ_PROFILE=1: GPU time per op kind over every run above, prefill and decode apart.
void print_op_profile(const std::map<std::string, Forward::OpTime>& prof, std::string_view title) {
  if (prof.empty()) return;
  double total[2] = {0, 0};
  for (const auto& [k, e] : prof) total[k.starts_with("decode/") ? 1 : 0] += e.ms;
  fmt::print(stderr, "\nGPU time per op (KVZ_PROFILE), {}:\n", title);
  fmt::print(stderr, "| op | ms | calls | share of phase |\n|---|---|---|---|\n");
  for (const auto& [k, e] : prof) {
    const double t = total[k.starts_with("decode/") ? 1 : 0];
    fmt::print(stderr, "| {} | {:.2f} | {} | {:.1f}% |\n", k, e.ms, e.count,
               t > 0 ? 100.0 * e.ms / t : 0.0);
  }
  // One embedding per run: decode runs = decoded tokens. Compare with 1000 / (tg tok/s) to see
  // the host-side and submission time per token.
  const auto it = prof.find("decode/embedding");
  if (it != prof.end() && it->second.count > 0)
    fmt::print(stderr, "GPU time per decoded token: {:.3f} ms ({} tokens)\n",
               total[1] / double(it->second.count), it->second.count);
}

}  // namespace

namespace {

struct Stat {
  double mean = 0, std = 0;
};

Stat stat(const std::vector<double>& v) {
  Stat s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(s.std / static_cast<double>(v.size() - 1)) : 0.0;
  return s;
}

std::vector<int32_t> random_tokens(const Tokenizer& tok, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  const int32_t lo = std::min<int32_t>(300, tok.n_vocab() / 2);
  std::uniform_int_distribution<int32_t> dist(lo, tok.n_vocab() - 1);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (auto& t : out) {
    do t = dist(rng);
    while (tok.token_type(t) != TokenType::kNormal);
  }
  return out;
}

class Table {
 public:
  explicit Table(const BenchArgs& a) : a_(a) {}
  void header(const std::string& model, const std::string& quant, const std::string& device) {
    model_ = model, quant_ = quant, device_ = device;
    fmt::print(
        "| model | quant | device | test | depth | value | unit "
        "|\n|---|---|---|---|---|---|---|\n");
  }
  void row(const std::string& test, int64_t depth, const std::vector<double>& v, const char* unit) {
    Stat s = stat(v);
    fmt::print("| {} | {} | {} | {} | {} | {:.2f} ± {:.2f} | {} |\n", model_, quant_, device_, test,
               depth, s.mean, s.std, unit);
    std::fflush(stdout);
    json_.push_back({{"model", model_},
                     {"quant", quant_},
                     {"device", device_},
                     {"test", test},
                     {"depth", depth},
                     {"mean", s.mean},
                     {"std", s.std},
                     {"unit", unit},
                     {"samples", v}});
  }
  void save() const {
    if (a_.json.empty()) return;
    write_file_atomic(a_.json, json_.dump(1) + "\n");
  }

 private:
  const BenchArgs& a_;
  std::string model_, quant_, device_;
  nlohmann::json json_ = nlohmann::json::array();
};

// After a prune: how uneven the heads are. Decode attention sizes its split-K shares by each
// layer's longest head, so a long head among short ones leaves few workgroups busy.
void print_head_spread(Session& s, double ratio) {
  const ModelConfig& c = s.model().config();
  double sum_rows = 0, sum_longest = 0, sum_ratio = 0;
  for (int il = 0; il < c.n_layers; ++il) {
    const auto longest = static_cast<double>(s.cache().max_rows(il));
    double rows = 0;
    for (int ih = 0; ih < c.n_kv_heads; ++ih) rows += static_cast<double>(s.cache().rows(il, ih));
    const double mean = rows / c.n_kv_heads;
    sum_rows += mean, sum_longest += longest, sum_ratio += mean > 0 ? longest / mean : 0.0;
  }
  const double L = c.n_layers;
  fmt::print(stderr,
             "kvzip r={}: rows per KV head (layer means) {:.0f}, longest head {:.0f}, longest / "
             "mean {:.2f}\n",
             ratio, sum_rows / L, sum_longest / L, sum_ratio / L);
}

}  // namespace

void add_bench_compare_options(CLI::App* bench, BenchArgs& b) {
  bench
      ->add_option("--compare", b.compare,
                   "Instead of running: put these kvzip bench --json / llama-bench -o json files "
                   "side by side (ratios to the first)")
      ->expected(1, 64);
  bench->add_option("--plot", b.plot, "With --compare: also a PNG chart of the tok/s rows");
}

int run_bench(const BenchArgs& a) {
  if (!a.compare.empty()) return run_bench_compare(a.compare, a.plot);
  if (!a.plot.empty()) throw InputError("--plot draws the chart of --compare: give --compare");
  if (a.no_retain && a.ratios.size() > 1)
    throw InputError("--no-retain prunes the live cache: give one --ratios value");
  Loaded l = load(resolve_model(a.model));
  const Model& m = *l.model;
  const Tokenizer& tok = m.tokenizer();
  const std::string quant(dtype_name(m.weights().layers.at(0).wq.dtype()));
  Table t(a);
  t.header(m.config().name, quant,
           fmt::format("{} ({})", l.device->caps().name, l.device->caps().driver));
  // The bytes a decode step reads at least once (bench/targets.py's bandwidth bound).
  t.row("weights", 0, {static_cast<double>(m.weights().bytes) / (1 << 20)}, "MiB");
  std::vector<int32_t> prefix;
  if (tok.bos_id() >= 0)
    prefix.push_back(tok.bos_id());
  else
    prefix.push_back(random_tokens(tok, 1, 7)[0]);

  SessionOptions so;
  so.prefill_chunk = a.ubatch;
  so.score_chunk = a.chunk;
  Session s(m, so);
  GenerateOptions gen;
  gen.max_new_tokens = a.n_gen;
  gen.ignore_eos = true;
  gen.temperature = a.temperature, gen.top_k = a.top_k, gen.top_p = a.top_p, gen.seed = a.seed;
  // Decode rows name their sampling when they sample ("tg64 t=0.8 k=40 p=0.9"); greedy: "tg64".
  const std::string tg = a.temperature > 0 ? fmt::format("tg{} t={} k={} p={}", a.n_gen,
                                                         a.temperature, a.top_k, a.top_p)
                                           : fmt::format("tg{}", a.n_gen);
  // KVZ_PROFILE: the GPU time per op of the runs since the last section, then start afresh.
  auto profile_section = [&](const std::string& title) {
    print_op_profile(s.op_profile(), title);
    s.reset_op_profile();
  };
  // A few untimed decode steps before each timed decode run: after host-only work (pruning) the
  // GPU has idled and lowered its clocks, which 32 timed tokens would otherwise partly measure.
  // They leave the cache as it was (update_cache is off).
  auto warm_up = [&] {
    if (a.n_gen <= 0) return;
    GenerateOptions w = gen;
    w.max_new_tokens = std::min(a.n_gen, 8);
    s.generate_tokens(random_tokens(tok, 1, 4242), w);
  };

  for (int64_t depth : a.depths) {
    auto ctx = random_tokens(tok, std::max<int64_t>(depth, 1), static_cast<uint32_t>(depth + 1));
    for (int64_t p : a.n_prompt) {
      std::vector<double> tps;
      // Progress on stderr: the context prefilled before each repetition, then the repetitions.
      Progress reps(fmt::format("pp{}@{}", p, depth), "reps");
      for (int r = -1; r < a.reps; ++r) {  // r = -1: untimed warm-up (pipelines, clocks)
        Progress ctx_bar(fmt::format("depth {}", depth), "tok");
        s.prefill_tokens(prefix, ctx, depth >= 4096 ? ctx_bar.fn() : ProgressFn{});
        auto prompt = random_tokens(tok, p, static_cast<uint32_t>(r + 17));
        GenerateOptions one = gen;
        one.max_new_tokens = 1;
        GenerateResult g = s.generate_tokens(prompt, one);
        if (r >= 0) tps.push_back(static_cast<double>(p) / g.prefill_ms * 1e3);
        reps(r + 1, a.reps + 1);
      }
      t.row(fmt::format("pp{}", p), depth, tps, "tok/s");
    }
    if (a.n_gen > 0) {
      std::vector<double> tps;
      Progress ctx_bar(fmt::format("depth {}", depth), "tok");
      s.prefill_tokens(prefix, ctx, depth >= 4096 ? ctx_bar.fn() : ProgressFn{});
      warm_up();
      Progress reps(fmt::format("{}@{}", tg, depth), "reps");
      for (int r = 0; r < a.reps; ++r) {
        GenerateResult g = s.generate_tokens(random_tokens(tok, 1, static_cast<uint32_t>(r)), gen);
        tps.push_back(static_cast<double>(g.tokens.size()) / g.decode_ms * 1e3);
        reps(r + 1, a.reps);
      }
      t.row(tg, depth, tps, "tok/s");
    }
  }
  profile_section("pp/tg runs");

  if (a.kvzip_depth > 0) {
    const int64_t D = a.kvzip_depth;
    auto ctx = random_tokens(tok, D, 99);
    std::vector<double> prefill_ms, score_ms;
    std::vector<std::vector<double>> prune_ms(a.ratios.size()), tg_tps(a.ratios.size()),
        kv_mib(a.ratios.size());
    for (int r = 0; r < a.reps; ++r) {
      Progress bar("prefill", "tok");
      s.set_retain(!a.no_retain);
      s.prefill_tokens(prefix, ctx, bar.fn());
      prefill_ms.push_back(s.prefill_ms());
      Progress sbar("scoring", "tok");
      s.score({}, sbar.fn());
      score_ms.push_back(s.score_ms());
      for (size_t i = 0; i < a.ratios.size(); ++i) {
        PruneResult pr = s.prune(a.ratios[i]);
        prune_ms[i].push_back(pr.ms);
        kv_mib[i].push_back(static_cast<double>(pr.bytes_after) / (1 << 20));
        if (r == 0) print_head_spread(s, a.ratios[i]);
        if (r == 0) profile_section("KVzip prefill and scoring");  // empty after the first ratio
        warm_up();
        GenerateResult g = s.generate_tokens(random_tokens(tok, 1, static_cast<uint32_t>(r)), gen);
        tg_tps[i].push_back(static_cast<double>(g.tokens.size()) / g.decode_ms * 1e3);
        if (r == 0)
          profile_section(fmt::format("KVzip decode at ratio {}, depth {}", a.ratios[i], D));
      }
    }
    t.row("kvzip prefill", D, prefill_ms, "ms");
    t.row("kvzip scoring", D, score_ms, "ms");
    for (size_t i = 0; i < a.ratios.size(); ++i) {
      t.row(fmt::format("kvzip prune r={}", a.ratios[i]), D, prune_ms[i], "ms");
      t.row(fmt::format("kvzip KV r={}", a.ratios[i]), D, kv_mib[i], "MiB");
      t.row(fmt::format("kvzip {} r={}", tg, a.ratios[i]), D, tg_tps[i], "tok/s");
    }
  }
  t.save();
  profile_section("KVzip repetitions after the first");
  return 0;
}

}  // namespace kvz::cli
