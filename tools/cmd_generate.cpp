// `kvzip generate`: plain generation with streaming output and speed figures, llama.cpp's
// conventions for prompts and sampling (tools/).
#include <fmt/format.h>

#include <iostream>

#include "tools/cli_util.h"
#include "tools/commands.h"

namespace kvz::cli {
namespace {

// The template's prefix with its system message replaced by `system` (-sys). Every family here
// writes the same default message; a template without one (plain) gets the message on its own.
std::string chat_prefix(const ChatTemplate& t, const std::string& system) {
  if (system.empty()) return t.prefix;
  constexpr std::string_view kDefault = "You are a helpful assistant";
  std::string p = t.prefix;
  const size_t at = p.find(kDefault);
  if (at == std::string::npos) return p + system + "\n\n";
  size_t n = kDefault.size();
  if (at + n < p.size() && p[at + n] == '.') ++n;
  return p.replace(at, n, system);
}

}  // namespace

int run_generate(const GenerateArgs& a) {
  const std::string model = resolve_model(a.model);
  const std::string prompt = a.chat ? "" : read_prompt(a.prompt, a.prompt_file);
  const std::string context = a.context_file.empty() ? "" : read_file(a.context_file);
  for (const KnownModel& k : known_models())
    if (a.model == k.name && !k.instruct && !a.raw)
      fmt::print(stderr, "note: {} is a base model, not a chat model: use --raw\n", k.name);
  Loaded l = load(model, a.ctx_size);
  SessionOptions so = session_options();
  so.instruction = "";
  Session s(*l.model, so);
  const Tokenizer& tok = l.model->tokenizer();
  GenerateOptions go;
  go.max_new_tokens = a.max_new_tokens;
  go.temperature = a.temperature;
  go.top_k = a.top_k;
  go.top_p = a.top_p;
  go.min_p = a.min_p;
  go.repeat_penalty = a.repeat_penalty;
  go.repeat_last_n = a.repeat_last_n;
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
  Progress bar("prefill", "tok");
  if (a.raw) {
    // Plain text to continue: BOS (where the vocabulary has one), the context, the prompt. All
    // but the last token are prefilled; the last one is the "query" that starts decoding.
    std::vector<int32_t> ids = tok.encode(context + prompt, true, false);
    if (ids.size() < 2) throw InputError("--raw needs a prompt of at least one token after BOS");
    const int32_t last = ids.back();
    ids.pop_back();
    s.prefill_tokens({}, ids, bar.fn());
    report(s.generate_tokens(std::span<const int32_t>(&last, 1), go));
    return 0;
  }
  s.prefill_tokens(tok.encode(chat_prefix(l.model->chat_template(), a.system_prompt), false, true),
                   tok.encode(context, false, false), bar.fn());
  if (!a.chat) {
    report(s.generate(prompt, go));
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
