// `kvzip` command-line entry point: parses the subcommand and reports errors as one line (tools/).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "kvzip/baselines.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "tools/commands.h"
#include "tools/eval_ruler.h"

int main(int argc, char** argv) {
  using namespace kvz::cli;
  CLI::App app{"kvzip: query-agnostic KV-cache compression (KVzip) on Vulkan"};
  app.require_subcommand(0, 1);
  // Global: before or after the subcommand (fallthrough), e.g. `kvzip bench -t 2 ...`.
  int threads = 0;
  app.add_option("-t,--threads", threads,
                 "CPU backend threads (default 0: one per hardware thread)")
      ->check(CLI::Range(0, 4096));
  bool cpu_exact = false;
  app.add_flag("--cpu-exact", cpu_exact,
               "CPU backend: keep activations in f32 for quantised weights (slower; default "
               "rounds them to int8 per 32 values)");
  app.fallthrough();
  auto* devices = app.add_subcommand("devices", "List Vulkan devices and the CPU backend");

  GenerateArgs g;
  auto* gen = app.add_subcommand("generate", "Generate text (streams tokens, prints tok/s)");
  gen->add_option(
      "-m,--model", g.model,
      "GGUF file, llama2.c .bin or synthetic:NAME[:f16|q4_k[:LAYERS]] (default: SmolLM2-135M)");
  gen->add_option("-p,--prompt", g.prompt, "User message");
  gen->add_option("--context", g.context_file, "Text file prefilled before the prompt");
  gen->add_flag("--chat", g.chat, "Interactive multi-turn chat on stdin");
  gen->add_option("-n,--max-new-tokens", g.max_new_tokens)->check(CLI::Range(1, 1 << 20));
  gen->add_option("--temp", g.temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0));
  gen->add_option("--top-k", g.top_k)->check(CLI::NonNegativeNumber);
  gen->add_option("--top-p", g.top_p)->check(CLI::Range(0.0, 1.0));
  gen->add_option("--seed", g.seed);

  RunArgs r;
  auto* run = app.add_subcommand(
      "run",
      "Prefill a context, compress it with KVzip, answer queries from full and compressed cache "
      "(no arguments: the built-in demo)");
  run->add_option("-m,--model", r.model, "GGUF file or llama2.c .bin (default: SmolLM2-135M)");
  run->add_option("--context", r.context_file, "Context text file (default: bundled demo)");
  run->add_option("-q,--query", r.queries, "Query (repeatable)");
  run->add_option("--ratio", r.ratio, "Fraction of context KV pairs kept");
  run->add_option("--level", r.level, "pair | pair-uniform | head")
      ->check(CLI::IsMember({"pair", "pair-uniform", "head"}));
  run->add_option("--head-scores", r.head_scores, "Head-score file for --level head");
  run->add_option("--chunk", r.chunk, "Scoring chunk (tokens)")->check(CLI::Range(16, 1 << 16));
  run->add_option("-n,--max-new-tokens", r.max_new_tokens)->check(CLI::Range(1, 1 << 16));
  run->add_option("--load-cache", r.load_cache, "Answer from a cache file written by `compress`");
  run->add_option("--save-cache", r.save_cache, "Write the compressed cache to this file");
  run->add_flag("--kvpress", r.kvpress, "kvpress-compatible scoring (4 sinks) and pruning");
  run->add_option("--kvzap", r.kvzap,
                  "KVzap weights (.kvzap): evict online while prefilling and decoding instead of "
                  "KVzip");
  run->add_option("--kvzap-threshold", r.kvzap_threshold, "KVzap log-score threshold (default -4)");
  run->add_option("--kvzap-window", r.kvzap_window, "KVzap recent window (default 128)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--save-head-scores", r.save_head_scores,
                  "Save head-level scores (max over this context's pair scores) for --level head");

  CompressArgs c;
  auto* comp = app.add_subcommand("compress", "Prefill, score and prune a context; save the cache");
  comp->add_option("-m,--model", c.model);
  comp->add_option("--context", c.context_file)->required();
  comp->add_option("-o,--output", c.output)->required();
  comp->add_option("--ratio", c.ratio);
  comp->add_option("--level", c.level)->check(CLI::IsMember({"pair", "pair-uniform", "head"}));
  comp->add_option("--head-scores", c.head_scores);
  comp->add_option("--chunk", c.chunk)->check(CLI::Range(16, 1 << 16));
  comp->add_option(
      "--save-head-scores", c.save_head_scores,
      "Also save head-level scores of this context (use a long sample) for --level head");

  BenchArgs b;
  auto* bench =
      app.add_subcommand("bench", "Speed table: pp/tg tokens/s at context depths, KVzip phases");
  bench->add_option("-m,--model", b.model,
                    "GGUF, llama2.c .bin, or synthetic:NAME[:f16|q4_k[:LAYERS]]");
  bench->add_option("-p,--n-prompt", b.n_prompt, "Prompt sizes")->delimiter(',');
  bench->add_option("-n,--n-gen", b.n_gen, "Generated tokens per decode test")
      ->check(CLI::Range(0, 1 << 16));
  bench->add_option("-d,--depth", b.depths, "Context depths for pp/tg")->delimiter(',');
  bench->add_option("-r,--reps", b.reps)->check(CLI::Range(1, 100));
  bench
      ->add_option("-b,--ubatch", b.ubatch,
                   "Prefill chunk (default: 2048 on GPUs with tensor cores, else 512)")
      ->check(CLI::Range(1, 1 << 16));
  bench->add_option("--chunk", b.chunk, "Scoring chunk")->check(CLI::Range(16, 1 << 16));
  bench->add_option("--kvzip-depth", b.kvzip_depth, "Context for the KVzip phases (0 = skip)");
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
  bench->add_option("--json", b.json, "Also write the rows as JSON");

  EvalArgs ev;
  auto* eval = app.add_subcommand("eval",
                                  "Accuracy vs kept ratio for KVzip and baselines (multi-query, "
                                  "one prefill + scoring per sample)");
  std::vector<std::string> tasks{"squad", "niah", "kv"};
  for (std::string_view t : ruler_task_names()) tasks.emplace_back(t);
  tasks.emplace_back("gsm8k");
  eval->add_option("--task", ev.task,
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
                   "JSON-lines results, resumed if present (default eval-TASK.jsonl)");
  eval->add_option("--plot", ev.plot, "PNG path (default: --out with .png)");
  eval->add_option("--length", ev.length,
                   "niah/kv/ruler context tokens (default 3000 / 2000 / 4096)");
  eval->add_option("--queries", ev.queries,
                   "niah needles / kv keys / ruler NIAH queries (keys asked) / ruler_vt chains / "
                   "ruler_qa questions per sample (default 4 / 4 / 1 / 1 / 1; cwe, fwe: 1)");
  eval->add_option("-n,--max-new-tokens", ev.max_new_tokens,
                   "Default: squad 24, niah 16, kv 48, ruler NIAH 32 (s3, mv, mq: 64), ruler_vt "
                   "30, ruler_cwe 120, ruler_fwe 50, ruler_qa 32, gsm8k 512");
  eval->add_option("--chunk", ev.chunk, "KVzip scoring chunk")->check(CLI::Range(16, 1 << 16));
  eval->add_option("--seed", ev.seed);
  eval->add_flag("--vary-haystack", ev.vary_haystack,
                 "niah: sample s starts s/num of the way into the essay (default: every sample "
                 "starts at its beginning); the texts depend on --num, so resume a file with the "
                 "same --num");
  eval->add_option("--data", ev.data_dir, "Directory of the bundled task data");
  eval->add_flag("--report", ev.report_only, "Only print the table and plot from --out");
  eval->add_option("--kvzap-dir", ev.kvzap_dir, "KVzap weights folder (default tools/data/kvzap)");
  eval->add_option("--kvzap-threshold", ev.kvzap_threshold,
                   "Fixed KVzap log-score threshold (default: one per --ratios entry)");
  eval->add_option("--kvzap-window", ev.kvzap_window, "KVzap recent window (tokens)")
      ->check(CLI::NonNegativeNumber);
  eval->add_option("--level", ev.level, "KVzip level: pair | head (head: kvzip runs as kvzip_head)")
      ->check(CLI::IsMember({"pair", "head"}));
  eval->add_option("--head-scores", ev.head_scores,
                   "kvzip_head's head scores (kvzip run --save-head-scores; default: computed "
                   "once from the first sample)");
  eval->add_option("--save-head-scores", ev.save_head_scores,
                   "Write the head scores kvzip_head used to FILE");
  eval->add_option("--dump-kept", ev.dump_kept,
                   "Debug: append per (sample, method, ratio) how many (layer, KV head) pairs "
                   "keep each context token around the first query's gold answer (JSON lines)");
  eval->add_flag("--oracle-window", ev.oracle_window,
                 "Debug: append the first query's gold answer (in quotes) to the query-aware "
                 "baselines' observation window, as if the answer had been generated; an oracle, "
                 "not a method: write its rows to their own --out");

  KvzapTrainArgs kt;
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

  CLI11_PARSE(app, argc, argv);
  kvz::set_cpu_threads(threads);
  kvz::set_cpu_int8_activations(!cpu_exact);
  try {
    if (devices->parsed()) return run_devices();
    if (gen->parsed()) return run_generate(g);
    if (run->parsed()) return run_run(r);
    if (comp->parsed()) return run_compress(c);
    if (bench->parsed()) return run_bench(b);
    if (eval->parsed()) return run_eval(ev);
    if (kvzap->parsed()) return run_kvzap_train(kt);
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const kvz::Error& e) {
    std::fprintf(stderr, "kvzip: error: %s\n", e.what());
    return 1;
  }
}
