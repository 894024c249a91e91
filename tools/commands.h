// Subcommands of the `kvzip` CLI (tools/). Each returns the process exit code.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace kvz::cli {

int run_devices();

struct GenerateArgs {
  std::string model, prompt_file, context_file, system_prompt;
  std::optional<std::string> prompt;  // absent or "-": read stdin (unless --chat or -f)
  bool chat = false, raw = false;     // raw: no chat template around the context and prompt
  int ctx_size = 0;                   // 0 = the model's context length
  int max_new_tokens = 128;
  float temperature = 0.0f, top_p = 1.0f, min_p = 0.05f;
  float repeat_penalty = 1.1f;
  int repeat_last_n = 64;
  int top_k = 0;
  uint64_t seed = 0;
};
int run_generate(const GenerateArgs& args);

struct RunArgs {
  std::string model, context_file, level = "pair", head_scores, load_cache, save_cache,
                                   save_head_scores;
  std::vector<std::string> queries;
  double ratio = 0.3;
  int ctx_size = 0;
  int max_answer_chars = 0;  // 0 = whole answers
  int max_new_tokens = 48;
  int chunk = 2000;
  bool kvpress = false;
  std::string method = "kvzip";  // any `kvzip eval` method (kvzip/baselines.h known_methods)
  std::string kvzap;             // KVzap weights file: online KVzap instead of KVzip
  float kvzap_threshold = -4.0f;
  int kvzap_window = 128;
};
int run_run(const RunArgs& args);

struct CompressArgs {
  std::string model, context_file, output, level = "pair", head_scores, save_head_scores;
  double ratio = 0.3;
  int ctx_size = 0;
  int chunk = 2000;
};
int run_compress(const CompressArgs& args);

struct BenchArgs {
  std::string model, json;
  std::vector<int64_t> n_prompt{512}, depths{0, 4096};
  int n_gen = 64, reps = 3, ubatch = 0, chunk = 2000;  // ubatch 0: the session's default
  int64_t kvzip_depth = 4096;                          // 0 = skip the KVzip phases
  bool no_retain = false;  // prune the live cache (ratios compound) instead of a retained copy
  std::vector<double> ratios{1.0, 0.5, 0.3, 0.1};
  float temperature = 0.0f;  // decode tests: 0 = greedy (argmax), else sampled
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 1;
  std::vector<std::string> compare;  // --compare: JSON files to put side by side (no model runs)
  std::string plot;                  // --compare: also this PNG chart
};
int run_bench(const BenchArgs& args);
// `kvzip bench --compare FILE... [--plot PNG]` (tools/bench_compare.h).
void add_bench_compare_options(CLI::App* bench, BenchArgs& args);

struct EvalArgs {
  std::string task = "squad", model, out, plot, data_dir;
  std::vector<std::string> methods{"kvzip", "snapkv", "streaming", "knorm", "random"};
  std::vector<double> ratios{0.1, 0.2, 0.3, 0.5, 1.0};
  int num = 0;             // samples (0 = task default)
  int64_t length = 0;      // niah/kv context tokens (0 = task default)
  int queries = 0;         // niah needles / kv keys per sample (0 = task default)
  int max_new_tokens = 0;  // 0 = task default
  int chunk = 2000;
  int batch = 1;  // a sample's queries answered together (Session::generate_batch)
  uint64_t seed = 1;
  bool vary_haystack = false;
  bool report_only = false;
  std::string kvzap_dir;                 // KVzap weights (default tools/data/kvzap)
  std::optional<float> kvzap_threshold;  // fixed tau instead of one per --ratios entry
  int kvzap_window = 128;
  std::string level = "pair";  // "head": the kvzip method runs as kvzip_head
  std::string head_scores;     // kvzip_head's head scores (default: from the first sample)
  std::string save_head_scores;
  std::string dump_kept;       // debug: which heads keep the first query's gold answer (JSON lines)
  bool oracle_window = false;  // debug: the first query's gold answer joins the observation window
  bool timings = false;        // one stderr line per sample: seconds in each phase
  std::string dump_samples;    // write the samples as token ids (JSON lines) instead of evaluating
  std::string dump_scores;     // with dump_samples: also our KVzip scores, DIR/<index>.f32
  std::string samples_file;    // the user's samples (task "samples", read_samples_jsonl)
};
int run_eval(const EvalArgs& args);

struct KvzapTrainArgs {
  std::string model, out_dir = "tools/data/kvzap";
  std::vector<std::string> kinds{"linear", "mlp"}, texts;  // texts empty = bundled corpus
  int prompt_tokens = 256, max_prompts = 0, val_every = 5, squad_from = 24, epochs = 15,
      d_hidden = 0;  // 0 = d_model / 8
};
int run_kvzap_train(const KvzapTrainArgs& args);

struct ServeArgs {
  std::string model, host = "127.0.0.1", api_key, cache_dir, head_scores, kvzap, alias;
  int port = 8080, parallel = 4, queue = 64, ctx_size = 0, prefill_chunk = 0;
  size_t memory_budget = 0;
  int build_queue = 4;
};
// `kvzip serve` (tools/cmd_serve.cpp): registers its options; run_serve when it was parsed.
CLI::App* add_serve_options(CLI::App& app, ServeArgs& args);
int run_serve(const ServeArgs& args);

// --cache-type-k / --cache-type-v on every subcommand of `app` that builds a KV cache (run,
// generate, compress, bench, eval, serve), into cli::cache_type_args()
// (tools/cache_type_options.cpp).
void add_cache_type_options(CLI::App& app);
// A registered subcommand: its CLI11 node and what runs it once it was parsed (the exit code).
// add_<command> (tools/kvz_cli.cpp) registers the options of one subcommand on `app`; its
// arguments live in run's closure. A new command: its run_<command>, add_<command>, one line in
// main's list.
struct Command {
  CLI::App* app;
  std::function<int()> run;
};
Command add_devices(CLI::App& app);
Command add_generate(CLI::App& app);
Command add_run(CLI::App& app);
Command add_compress(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_kvzap_train(CLI::App& app);
Command add_serve(CLI::App& app);

}  // namespace kvz::cli
