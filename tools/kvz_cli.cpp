// `kvzip` command-line entry point: one add_<command>() per subcommand registers its options
// (tools/commands.h); main builds the app, parses, runs the parsed command and reports errors as
// one line (tools/).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "kvzip/baselines.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "tools/cli_util.h"
#include "tools/commands.h"
#include "tools/eval_ruler.h"

namespace {

using namespace kvz::cli;

// Validators that run while parsing, so that a bad argument is reported before any model loads.
// CLI11 prefixes their messages with the option's name.
CLI::Validator in_file() {
  return CLI::Validator(
      [](std::string& p) {
        try {
          check_input_file(p, "");
        } catch (const kvz::Error& e) {
          return std::string(e.what());
        }
        return std::string();
      },
      "FILE");
}
CLI::Validator out_file() {
  return CLI::Validator(
      [](std::string& p) {
        try {
          check_output_file(p, "");
        } catch (const kvz::Error& e) {
          return std::string(e.what());
        }
        return std::string();
      },
      "FILE");
}

std::string model_help() {
  std::string names;
  for (const KnownModel& k : known_models())
    names += fmt::format("{}{}{}", names.empty() ? "" : ", ", k.name, k.instruct ? "" : " (base)");
  return "GGUF file, Hugging Face safetensors folder, llama2.c .bin, a model fetched by "
         "tools/fetch_model.sh into $KVZIP_MODELS (" +
         names + ") or synthetic:NAME[:TYPE[:LAYERS]] (default: smollm2-135m)";
}

void add_model(CLI::App* sub, std::string& model) {
  sub->add_option("-m,--model", model, model_help());
}
void add_ctx_size(CLI::App* sub, int& n) {
  sub->add_option("-c,--ctx-size", n, "Context size in tokens (0 = the model's context length)")
      ->check(CLI::NonNegativeNumber);
}
const char* const kRatioHelp = "Fraction of context KV pairs kept, in (0, 1]";

// llama.cpp spells a few long options with one dash (-sys); CLI11 wants two.
std::vector<std::string> llama_cpp_spellings(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    args.emplace_back(a == "-sys" ? "--system-prompt" : a);
  }
  std::reverse(args.begin(), args.end());  // CLI11's parse(vector) takes them last first
  return args;
}

// Global options: before or after the subcommand (fallthrough), e.g. `kvzip bench -t 2 ...`.
void add_global_options(CLI::App& app, int& threads, bool& cpu_exact) {
  app.add_option("-t,--threads", threads,
                 "CPU backend threads (default 0: one per hardware thread)")
      ->check(CLI::Range(0, 4096));
  app.add_flag("--cpu-exact", cpu_exact,
               "CPU backend: keep activations in f32 for quantised weights (slower; default "
               "rounds them to int8 per 32 values)");
  app.fallthrough();
}

}  // namespace

namespace kvz::cli {

Command add_devices(CLI::App& app) {
  return {app.add_subcommand("devices", "List Vulkan devices and the CPU backend"), run_devices};
}

Command add_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  GenerateArgs& g = *args;
  auto* gen = app.add_subcommand("generate", "Generate text (streams tokens, prints tok/s)");
  add_model(gen, g.model);
  auto* prompt =
      gen->add_option("-p,--prompt", g.prompt,
                      "User message; '-' or no -p/-f reads it from stdin (default: stdin)");
  auto* prompt_file =
      gen->add_option("-f,--file", g.prompt_file, "Read the user message from this file")
          ->check(in_file())
          ->excludes(prompt);
  gen->add_option("--system-prompt", g.system_prompt,
                  "System message, also -sys (default: the template's, 'You are a helpful "
                  "assistant')");
  gen->add_option("--context", g.context_file, "Text file prefilled before the prompt")
      ->check(in_file());
  gen->add_flag("--chat", g.chat, "Interactive multi-turn chat on stdin")
      ->excludes(prompt)
      ->excludes(prompt_file);
  gen->add_flag("--raw", g.raw,
                "No chat template: the context and prompt are plain text to continue (base "
                "models, e.g. gemma3-270m)");
  add_ctx_size(gen, g.ctx_size);
  gen->add_option("-n,--n-predict,--max-new-tokens", g.max_new_tokens, "Tokens to generate at most")
      ->check(CLI::Range(1, 1 << 20));
  gen->add_option("--temp", g.temperature, "Temperature; 0 = greedy")
      ->check(CLI::Range(0.0, 100.0));
  gen->add_option("--top-k", g.top_k, "Top-k sampling (0 = off)")->check(CLI::NonNegativeNumber);
  gen->add_option("--top-p", g.top_p, "Top-p sampling (1 = off)")->check(CLI::Range(0.0, 1.0));
  gen->add_option("--min-p", g.min_p,
                  "Min-p sampling: drop tokens below min-p x the top token's probability (0 = off; "
                  "with --temp 0 it changes nothing)")
      ->check(CLI::Range(0.0, 0.999));
  gen->add_option("--repeat-penalty", g.repeat_penalty,
                  "Penalise the last --repeat-last-n tokens (1 = off; llama.cpp's rule)")
      ->check(CLI::Range(0.01, 100.0));
  gen->add_option("--repeat-last-n", g.repeat_last_n,
                  "Tokens the repeat penalty looks back over (0 = off)")
      ->check(CLI::Range(0, 8192));
  gen->add_option("-s,--seed", g.seed, "Sampling seed");
  return {gen, [args] { return run_generate(*args); }};
}

Command add_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  RunArgs& r = *args;
  auto* run = app.add_subcommand(
      "run",
      "Prefill a context, compress it with KVzip, answer queries from full and compressed cache "
      "(no arguments: the built-in demo)");
  add_model(run, r.model);
  auto* run_context =
      run->add_option("--context", r.context_file, "Context text file (default: the bundled demo)")
          ->check(in_file());
  run->add_option("-q,--query", r.queries, "Query (repeatable; default: the demo's questions)");
  run->add_option("--ratio", r.ratio, kRatioHelp)->check(CLI::Range(1e-6, 1.0));
  run->add_option("--level", r.level, "pair | pair-uniform | head")
      ->check(CLI::IsMember({"pair", "pair-uniform", "head"}));
  run->add_option("--head-scores", r.head_scores, "Head-score file for --level head")
      ->check(in_file());
  run->add_option("--chunk", r.chunk, "Scoring chunk (tokens)")->check(CLI::Range(16, 1 << 16));
  add_ctx_size(run, r.ctx_size);
  run->add_option("-n,--max-new-tokens", r.max_new_tokens, "Tokens per answer at most")
      ->check(CLI::Range(1, 1 << 16));
  run->add_option("--max-answer-chars", r.max_answer_chars,
                  "Cut printed answers to this many characters (0 = whole answers)")
      ->check(CLI::NonNegativeNumber);
  auto* load_cache = run->add_option("--load-cache", r.load_cache,
                                     "Answer from a cache file written by `compress`")
                         ->check(in_file())
                         ->excludes(run_context);
  run->add_option("--save-cache", r.save_cache, "Write the compressed cache to this file")
      ->check(out_file());
  run->add_flag("--kvpress", r.kvpress, "kvpress-compatible scoring (4 sinks) and pruning");
  run->add_option("--method", r.method,
                  "Pruning method: kvzip (default), kvzip_head (= --level head) or any baseline of "
                  "`kvzip eval` (query-aware ones observe the first -q)")
      ->check(CLI::IsMember(kvz::known_methods()));
  run->add_option("--kvzap", r.kvzap,
                  "KVzap weights (.kvzap): evict online while prefilling and decoding instead of "
                  "KVzip")
      ->check(in_file())
      ->excludes(load_cache);
  run->add_option("--kvzap-threshold", r.kvzap_threshold, "KVzap log-score threshold");
  run->add_option("--kvzap-window", r.kvzap_window, "KVzap recent window (tokens)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--save-head-scores", r.save_head_scores,
                  "Save head-level scores (max over this context's pair scores) for --level head")
      ->check(out_file());
  return {run, [args] { return run_run(*args); }};
}

Command add_compress(CLI::App& app) {
  auto args = std::make_shared<CompressArgs>();
  CompressArgs& c = *args;
  auto* comp = app.add_subcommand("compress", "Prefill, score and prune a context; save the cache");
  add_model(comp, c.model);
  comp->add_option("--context", c.context_file, "Context text file")->required()->check(in_file());
  comp->add_option("-o,--output", c.output, "Cache file to write")->required()->check(out_file());
  comp->add_option("--ratio", c.ratio, kRatioHelp)->check(CLI::Range(1e-6, 1.0));
  comp->add_option("--level", c.level, "pair | pair-uniform | head")
      ->check(CLI::IsMember({"pair", "pair-uniform", "head"}));
  comp->add_option("--head-scores", c.head_scores, "Head-score file for --level head")
      ->check(in_file());
  comp->add_option("--chunk", c.chunk, "Scoring chunk (tokens)")->check(CLI::Range(16, 1 << 16));
  add_ctx_size(comp, c.ctx_size);
  comp->add_option(
          "--save-head-scores", c.save_head_scores,
          "Also save head-level scores of this context (use a long sample) for --level head")
      ->check(out_file());
  return {comp, [args] { return run_compress(*args); }};
}

Command add_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  BenchArgs& b = *args;
  auto* bench =
      app.add_subcommand("bench", "Speed table: pp/tg tokens/s at context depths, KVzip phases");
  add_model(bench, b.model);
  bench->add_option("-p,--n-prompt", b.n_prompt, "Prompt sizes (tokens)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  bench->add_option("-n,--n-gen", b.n_gen, "Generated tokens per decode test (0 = none)")
      ->check(CLI::Range(0, 1 << 16));
  bench->add_option("-d,--depth", b.depths, "Context depths for pp/tg (tokens)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  bench->add_option("-r,--reps", b.reps, "Repetitions")->check(CLI::Range(1, 100));
  bench
      ->add_option("-b,--ubatch", b.ubatch,
                   "Prefill chunk (0 = 2048 on GPUs with tensor cores, else 512)")
      ->check(CLI::Range(0, 1 << 16));
  bench->add_option("--chunk", b.chunk, "Scoring chunk")->check(CLI::Range(16, 1 << 16));
  bench->add_option("--kvzip-depth", b.kvzip_depth, "Context for the KVzip phases (0 = skip)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  bench->add_flag(
      "--no-retain", b.no_retain,
      "Prune the live cache, keeping no full copy (each ratio prunes the previous one's "
      "result: give one ratio)");
  bench->add_option("--ratios", b.ratios, "Kept ratios")
      ->delimiter(',')
      ->check(CLI::Range(1e-6, 1.0));
  bench->add_option("--temp", b.temperature, "Decode tests sample at this temperature (0 = greedy)")
      ->check(CLI::Range(0.0, 100.0));
  bench->add_option("--top-k", b.top_k, "Sampling: top-k (0 = all)")->check(CLI::NonNegativeNumber);
  bench->add_option("--top-p", b.top_p, "Sampling: top-p")->check(CLI::Range(0.0, 1.0));
  bench->add_option("-s,--seed", b.seed, "Sampling seed of the decode tests");
  bench->add_option("--json", b.json, "Also write the rows as JSON to this file (default: none)")
      ->check(out_file());
  add_bench_compare_options(bench, b);
  return {bench, [args] { return run_bench(*args); }};
}

Command add_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  EvalArgs& ev = *args;
  auto* eval = app.add_subcommand("eval",
                                  "Accuracy vs kept ratio for KVzip and baselines (multi-query, "
                                  "one prefill + scoring per sample)");
  std::vector<std::string> tasks{"squad", "niah", "kv"};
  for (std::string_view t : ruler_task_names()) tasks.emplace_back(t);
  tasks.emplace_back("gsm8k");
  auto* task_opt =
      eval->add_option(
              "--task", ev.task,
              "squad | niah | kv | ruler_{s1,s2,s3,mk,mk2,mk3,mv,mq,vt,cwe,fwe,qa} | gsm8k")
          ->check(CLI::IsMember(tasks));
  eval->add_option("-m,--model", ev.model, "GGUF file or llama2.c .bin (default: SmolLM2-135M)");
  std::string methods;  // the scorers' names (kvzip/baselines.h), then the KVzap surrogates
  for (const std::string& m : kvz::known_methods()) methods += m + ",";
  eval->add_option("--methods", ev.methods, methods + "kvzap_linear,kvzap_mlp")->delimiter(',');
  eval->add_option("--ratios", ev.ratios, "Kept ratios")
      ->delimiter(',')
      ->check(CLI::Range(1e-6, 1.0));
  eval->add_option("--num", ev.num, "Samples (default: squad 48, niah/kv/ruler 8, gsm8k 50)")
      ->check(CLI::NonNegativeNumber);
  eval->add_option("--out", ev.out,
                   "JSON-lines results, resumed if present (default eval-TASK.jsonl)")
      ->check(out_file());
  eval->add_option("--plot", ev.plot, "PNG path (default: --out with .png)")->check(out_file());
  eval->add_option("--length", ev.length,
                   "niah/kv/ruler context tokens (default 3000 / 2000 / 4096)");
  eval->add_option("--queries", ev.queries,
                   "niah needles / kv keys / ruler NIAH queries (keys asked) / ruler_vt chains / "
                   "ruler_qa questions per sample (default 4 / 4 / 1 / 1 / 1; cwe, fwe: 1)");
  eval->add_option("-n,--max-new-tokens", ev.max_new_tokens,
                   "Default: squad 24, niah 16, kv 48, ruler NIAH 32 (s3, mv, mq: 64), ruler_vt "
                   "30, ruler_cwe 120, ruler_fwe 50, ruler_qa 32, gsm8k 512");
  eval->add_option("--chunk", ev.chunk, "KVzip scoring chunk")->check(CLI::Range(16, 1 << 16));
  eval->add_option("--batch", ev.batch,
                   "Queries of a sample answered in one batched forward (greedy only)")
      ->check(CLI::Range(1, 256));
  eval->add_option("--seed", ev.seed);
  eval->add_flag("--vary-haystack", ev.vary_haystack,
                 "niah: sample s starts s/num of the way into the essay (default: every sample "
                 "starts at its beginning); the texts depend on --num, so resume a file with the "
                 "same --num");
  eval->add_option("--data", ev.data_dir,
                   "Directory of the task data (default: share/kvzip-vk/eval next to the binary)")
      ->check(CLI::ExistingDirectory);
  eval->add_flag("--report", ev.report_only, "Only print the table and plot from --out");
  eval->add_option("--kvzap-dir", ev.kvzap_dir,
                   "KVzap weights folder (default: share/kvzip-vk/kvzap next to the binary)")
      ->check(CLI::ExistingDirectory);
  eval->add_option("--kvzap-threshold", ev.kvzap_threshold,
                   "Fixed KVzap log-score threshold (default: one per --ratios entry)");
  eval->add_option("--kvzap-window", ev.kvzap_window, "KVzap recent window (tokens)")
      ->check(CLI::NonNegativeNumber);
  eval->add_option("--level", ev.level, "KVzip level: pair | head (head: kvzip runs as kvzip_head)")
      ->check(CLI::IsMember({"pair", "head"}));
  eval->add_option("--head-scores", ev.head_scores,
                   "kvzip_head's head scores (kvzip run --save-head-scores; default: computed "
                   "once from the first sample)")
      ->check(in_file());
  eval->add_option("--save-head-scores", ev.save_head_scores,
                   "Write the head scores kvzip_head used to FILE")
      ->check(out_file());
  eval->add_option("--dump-kept", ev.dump_kept,
                   "Debug: append per (sample, method, ratio) how many (layer, KV head) pairs "
                   "keep each context token around the first query's gold answer (JSON lines)")
      ->check(out_file());
  eval->add_flag("--timings", ev.timings,
                 "Print one line per sample with the seconds spent in each phase (prefill, "
                 "scoring, each method's scores, pruning and answering)");
  eval->add_flag("--oracle-window", ev.oracle_window,
                 "Debug: append the first query's gold answer (in quotes) to the query-aware "
                 "baselines' observation window, as if the answer had been generated; an oracle, "
                 "not a method: write its rows to their own --out");

  auto* samples_opt = eval->add_option(
      "--samples", ev.samples_file,
      "Evaluate your own samples: JSON lines {\"id\", \"context\", \"queries\": [str], "
      "\"answers\": [str | [str]]} (metric: a normalised answer is contained); docs/FIDELITY.md");
  samples_opt->excludes(task_opt);
  eval->add_option("--dump-samples", ev.dump_samples,
                   "Write every sample as fed (token ids of prefix, context, KVzip "
                   "reconstruction inputs, queries) to FILE (JSON lines) and exit; "
                   "docs/FIDELITY.md");
  eval->add_option("--dump-scores", ev.dump_scores,
                   "With --dump-samples: also prefill, score and write each sample's KVzip "
                   "scores to DIR/<index>.f32 (f32 [layers, KV heads, context])");
  return {eval, [args] { return run_eval(*args); }};
}

Command add_kvzap_train(CLI::App& app) {
  auto args = std::make_shared<KvzapTrainArgs>();
  KvzapTrainArgs& kt = *args;
  auto* kvzap = app.add_subcommand(
      "kvzap-train",
      "Train KVzap surrogates (linear, MLP) on log KVzip+ targets computed by this engine");
  kvzap->add_option("-m,--model", kt.model, "GGUF file or llama2.c .bin (default: SmolLM2-135M)");
  kvzap->add_option("-o,--out-dir", kt.out_dir, "Where MODEL.{linear,mlp}.kvzap are written");
  kvzap->add_option("--kinds", kt.kinds, "linear,mlp")->delimiter(',');
  kvzap->add_option("--text", kt.texts, "Corpus text files (default: bundled essays + SQuAD)");
  kvzap->add_option("--prompt-tokens", kt.prompt_tokens, "Tokens per training prompt");
  kvzap->add_option("--max-prompts", kt.max_prompts, "Cap on prompts (0 = all)");
  kvzap->add_option("--val-every", kt.val_every, "Every N-th prompt is held out for validation");
  kvzap->add_option("--squad-from", kt.squad_from,
                    "First SQuAD paragraph used for training (earlier ones are eval samples)");
  kvzap->add_option("--epochs", kt.epochs, "MLP epochs")->check(CLI::Range(1, 1000));
  kvzap->add_option("--d-hidden", kt.d_hidden, "MLP hidden width (default d_model/8)");
  return {kvzap, [args] { return run_kvzap_train(*args); }};
}

Command add_serve(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  return {add_serve_options(app, *args), [args] { return run_serve(*args); }};
}

}  // namespace kvz::cli

int main(int argc, char** argv) {
  CLI::App app{"kvzip: query-agnostic KV-cache compression (KVzip) on Vulkan"};
  app.require_subcommand(0, 1);
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", version_string(),
                       "Print the version, git hash, build type "
                       "and shader builds, then exit");
  int threads = 0;
  bool cpu_exact = false;
  add_global_options(app, threads, cpu_exact);
  std::vector<Command> commands;  // one line per subcommand, in the order --help lists them
  commands.push_back(add_devices(app));
  commands.push_back(add_generate(app));
  commands.push_back(add_run(app));
  commands.push_back(add_compress(app));
  commands.push_back(add_bench(app));
  commands.push_back(add_eval(app));
  commands.push_back(add_kvzap_train(app));
  commands.push_back(add_serve(app));
  add_cache_type_options(app);  // on the subcommands above that build a KV cache

  try {
    app.parse(llama_cpp_spellings(argc, argv));
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "kvzip: error: %s (kvzip --help lists the options)\n", e.what());
    return 1;
  }
  kvz::set_cpu_threads(threads);
  kvz::set_cpu_int8_activations(!cpu_exact);
  try {
    for (const Command& c : commands)
      if (c.app->parsed()) return c.run();
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const std::exception& e) {  // kvz::Error and anything else: one line, exit 1
    std::fprintf(stderr, "kvzip: error: %s\n", e.what());
    return 1;
  }
}
