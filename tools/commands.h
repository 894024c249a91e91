// Subcommands of the `kvzip` CLI (tools/). Each returns the process exit code.
#pragma once

namespace kvz::cli {

int run_devices();

}  // namespace kvz::cli
