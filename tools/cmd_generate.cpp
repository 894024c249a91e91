// `kvzip generate`: plain generation with streaming output and speed figures (tools/).
#include <fmt/format.h>

#include <iostream>

#include "tools/cli_util.h"
#include "tools/commands.h"

namespace kvz::cli {

int run_generate(const GenerateArgs& a) {
  Loaded l = load(a.model.empty() ? default_model_path() : a.model);
  SessionOptions so;
  so.instruction = "";
  Session s(*l.model, so);
  std::string context = a.context_file.empty() ? "" : read_file(a.context_file);
  Progress bar("prefill", "tok");
  s.prefill(context, bar.fn());
  GenerateOptions go;
  go.max_new_tokens = a.max_new_tokens;
  go.temperature = a.temperature;
  go.top_k = a.top_k;
  go.top_p = a.top_p;
  go.seed = a.seed;
  go.update_cache = a.chat;
  go.on_text = [](std::string_view t) {
    fmt::print("{}", t);
    std::fflush(stdout);
  };
  auto report = [&](const GenerateResult& r) {
    fmt::print("\n");
    fmt::print(stderr,
               "[prompt {} tok, {:.1f} tok/s | decode {} tok, {:.1f} tok/s | KV {} | device {}]\n",
               r.n_prompt_tokens, r.n_prompt_tokens / std::max(r.prefill_ms, 1e-3) * 1e3,
               r.tokens.size(), r.tokens.size() / std::max(r.decode_ms, 1e-3) * 1e3,
               human_bytes(static_cast<double>(s.cache().bytes_in_use())),
               human_bytes(static_cast<double>(l.device->bytes_in_use())));
  };
  if (!a.chat) {
    report(s.generate(a.prompt, go));
    return 0;
  }
  std::string line;
  fmt::print(stderr, "chat mode: one message per line, empty line or EOF ends\n> ");
  while (std::getline(std::cin, line) && !line.empty()) {
    report(s.generate(line, go));
    fmt::print(stderr, "> ");
  }
  return 0;
}

}  // namespace kvz::cli
