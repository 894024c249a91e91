// Shared CLI helpers: default model path, device + model loading with progress, progress bars
// (tools/).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "model/model.h"
#include "model/session.h"

namespace kvz::cli {

// A model fetched by tools/fetch_model.sh: its name there, its file in $KVZIP_MODELS, and whether
// it is an instruct (chat) model or a base model (for `generate --raw`).
struct KnownModel {
  const char* name;
  const char* file;
  bool instruct;
};
std::span<const KnownModel> known_models();
// $KVZIP_MODELS (default ~/.cache/kvzip/models, as tools/fetch_model.sh).
std::string models_dir();
// What -m names: empty = smollm2-135m; a known_models() name = its file in models_dir();
// synthetic:... unchanged; anything else a path that must exist. Throws InputError (naming the
// fetch command for a known model not fetched yet) before anything is loaded.
std::string resolve_model(const std::string& m);
// The default model's file (resolve_model("")).
std::string default_model_path();
// Opens KVZIP_DEVICE (or the default) and loads the model, printing what it does to stderr.
// "synthetic:NAME[:TYPE]" builds a synthetic model (model.h) instead of reading a file.
// ctx_size > 0 lowers the model's context length to it (-c; InputError above the model's own).
struct Loaded {
  std::unique_ptr<Device> device;
  std::unique_ptr<Model> model;
};
Loaded load(const std::string& model_path, int ctx_size = 0);

// The bundled data folder `sub` (demo, eval, kvzap): share/kvzip-vk/<sub> next to the binary's
// folder (installed: <prefix>/bin -> <prefix>/share/kvzip-vk; build tree: build/tools ->
// build/share/kvzip-vk, copied there at build time). Throws InputError when missing.
std::string data_dir(std::string_view sub);

// Checks made before any model loads (InputError naming `what` on failure): a readable regular
// file; an output path whose folder exists and is writable and which is not a folder itself.
void check_input_file(const std::string& path, std::string_view what);
void check_output_file(const std::string& path, std::string_view what);
// The prompt text: `file` when given, else `prompt` unless it is "-" or absent (nullopt), else all
// of stdin. Throws InputError when the result is empty.
std::string read_prompt(const std::optional<std::string>& prompt, const std::string& file);

// "kvzip 0.1 (git abc1234, Release; shaders: glslc, KHR coopmat yes, NV coopmat2 no)".
std::string version_string();

// A one-line progress bar on stderr: "label [#####.....] done/total unit".
class Progress {
 public:
  Progress(std::string label, std::string unit)
      : label_(std::move(label)), unit_(std::move(unit)) {}
  void operator()(int64_t done, int64_t total);
  ProgressFn fn() {
    return [this](int64_t d, int64_t t) { (*this)(d, t); };
  }

 private:
  std::string label_, unit_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  int64_t last_step_ = -1;
};

std::string human_bytes(double bytes);

// --cache-type-k / --cache-type-v (llama.cpp's names: f16, q8_0, q4_0) of the commands that build
// a KV cache (add_cache_type_options in tools/commands.h registers them), as parsed.
struct CacheTypeArgs {
  std::string k = "f16", v = "f16";
};
CacheTypeArgs& cache_type_args();
// SessionOptions{} with the parsed cache types; InputError naming the option for a bad type.
SessionOptions session_options();
// "q8_0 K / q4_0 V" style label of a session's cache types ("" for f16 K and V).
std::string cache_type_label(const SessionOptions& so);
std::string read_file(const std::string& path);

}  // namespace kvz::cli
