// --cache-type-k / --cache-type-v: registered once on every subcommand that builds a KV cache, so
// that each command's option list stays where it is (tools/).
#include <CLI/CLI.hpp>

#include "runtime/kv_quant.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace kvz::cli {

void add_cache_type_options(CLI::App& app) {
  CacheTypeArgs& a = cache_type_args();
  // Checked while parsing, before a model loads; session_options() parses the same way.
  const CLI::Validator type_name(
      [](std::string& name) -> std::string {
        try {
          kv_cache_type_from_name(name, "type");
          return {};
        } catch (const InputError&) {
          return "unknown KV cache type '" + name + "' (use f16, q8_0 or q4_0)";
        }
      },
      "f16|q8_0|q4_0");
  for (const char* name : {"run", "generate", "compress", "bench", "eval", "serve"}) {
    CLI::App* sub = nullptr;
    try {
      sub = app.get_subcommand(name);
    } catch (const CLI::OptionNotFound&) {
      continue;
    }
    sub->add_option("--cache-type-k", a.k,
                    "KV cache type for K: f16, q8_0 or q4_0 (docs/KVQUANT.md)")
        ->capture_default_str()
        ->check(type_name);
    sub->add_option("--cache-type-v", a.v,
                    "KV cache type for V: f16, q8_0 or q4_0 (docs/KVQUANT.md)")
        ->capture_default_str()
        ->check(type_name);
  }
}

}  // namespace kvz::cli
