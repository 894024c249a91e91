// `kvzip` command-line entry point: parses the subcommand and reports errors as one line (tools/).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "runtime/error.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"kvzip: query-agnostic KV-cache compression (KVzip) on Vulkan"};
  app.require_subcommand(0, 1);
  auto* devices = app.add_subcommand("devices", "List Vulkan devices and the CPU backend");
  CLI11_PARSE(app, argc, argv);
  try {
    if (devices->parsed()) return kvz::cli::run_devices();
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const kvz::Error& e) {
    std::fprintf(stderr, "kvzip: error: %s\n", e.what());
    return 1;
  }
}
