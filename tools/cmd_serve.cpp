// `kvzip serve`: the OpenAI-compatible server (server/) behind the CLI: options, model loading,
// signals (tools/).
#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <thread>

#include "server/http_server.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace kvz::cli {

CLI::App* add_serve_options(CLI::App& app, ServeArgs& a) {
  auto* s = app.add_subcommand(
      "serve",
      "OpenAI-compatible HTTP server: contexts compressed once, queried by many requests at once");
  s->add_option("-m,--model", a.model,
                "GGUF file, llama2.c .bin or synthetic:NAME[:TYPE[:LAYERS]] (default: "
                "SmolLM2-135M)");
  s->add_option("--host", a.host, "Address to bind (default 127.0.0.1: this machine only)");
  s->add_option("--port", a.port, "TCP port (0: any free port, printed at start)")
      ->check(CLI::Range(0, 65535));
  s->add_option("--api-key", a.api_key, "Require 'Authorization: Bearer KEY' on /v1/ routes");
  s->add_option("--parallel", a.parallel, "Requests decoded together (batched)")
      ->check(CLI::Range(1, 1024));
  s->add_option("--queue", a.queue, "Requests waiting for a slot before 429")
      ->check(CLI::Range(0, 1 << 16));
  s->add_option("--ctx-size", a.ctx_size,
                "Tokens per sequence: context + prompt + answer (default: the model's)")
      ->check(CLI::Range(0, 1 << 24));
  s->add_option("--cache-dir", a.cache_dir,
                "Keep contexts as cache files here (reloaded at start; evicted caches reload)");
  s->add_option("--memory-budget", a.memory_budget,
                "Bytes of resident context caches before least-recently-used ones are evicted "
                "(0: no limit; eviction needs --cache-dir)");
  s->add_option("--prefill-chunk", a.prefill_chunk,
                "Prompt tokens prefilled per step, interleaved with decoding (default: the "
                "session's prefill chunk)")
      ->check(CLI::Range(0, 1 << 16));
  s->add_option("--head-scores", a.head_scores, "Head scores for contexts of method kvzip_head");
  s->add_option("--kvzap", a.kvzap, "KVzap weights (.kvzap) for contexts of method kvzap");
  s->add_option("--build-queue", a.build_queue,
                "Context builds waiting while one runs (they run one at a time) before 429")
      ->check(CLI::Range(0, 1 << 16));
  s->add_option("--alias", a.alias, "Model name in /v1/models (default: the model file name)");
  return s;
}

int run_serve(const ServeArgs& a) {
  // SIGINT / SIGTERM end the server cleanly: blocked here (inherited by every thread), then
  // taken by one thread with sigwait, which stops the HTTP server.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-response is an error code, not a signal

  const std::string path = a.model.empty() ? default_model_path() : a.model;
  Loaded l = load(path);
  server::EngineOptions eo;
  eo.parallel = a.parallel;
  eo.max_queue = a.queue;
  eo.ctx_size = a.ctx_size;
  eo.prefill_chunk = a.prefill_chunk;
  eo.cache_dir = a.cache_dir;
  eo.memory_budget = a.memory_budget;
  eo.head_scores = a.head_scores;
  eo.kvzap = a.kvzap;
  eo.build_queue = a.build_queue;
  const SessionOptions so = session_options();  // --cache-type-k / --cache-type-v
  eo.cache_type_k = so.cache_type_k;
  eo.cache_type_v = so.cache_type_v;
  server::Engine engine(*l.model, eo);
  server::HttpOptions ho;
  ho.host = a.host;
  ho.port = a.port;
  ho.api_key = a.api_key;
  ho.model_id = a.alias.empty() ? std::filesystem::path(path).filename().string() : a.alias;
  // Every slot, queued request and waiting or running context build blocks one thread.
  ho.threads = a.parallel + a.queue + a.build_queue + 9;
  server::HttpServer http(engine, ho);
  http.bind();
  const std::string types = cache_type_label(so);
  fmt::print(stderr, "kvzip serve: model '{}' on http://{}:{} ({} slots, {}-token sequences{}{})\n",
             ho.model_id, a.host, http.port(), a.parallel, engine.ctx_size(),
             types.empty() ? "" : ", " + types + " cache",
             a.cache_dir.empty() ? "" : ", contexts in " + a.cache_dir);
  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig != 0) http.stop();
  });
  http.listen();
  pthread_kill(signals.native_handle(), SIGTERM);  // ends the sigwait when stopped otherwise
  signals.join();
  fmt::print(stderr, "kvzip serve: stopped\n");
  return 0;
}

}  // namespace kvz::cli
