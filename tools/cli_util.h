// Shared CLI helpers: default model path, device + model loading with progress, progress bars
// (tools/).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "model/model.h"
#include "model/session.h"

namespace kvz::cli {

// $KVZIP_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf (default ~/.cache/kvzip/models), fetched by
// tools/fetch_model.sh. Throws InputError naming the fetch command when missing.
std::string default_model_path();
// Opens KVZIP_DEVICE (or the default) and loads the model, printing what it does to stderr.
// "synthetic:NAME[:TYPE]" builds a synthetic model (model.h) instead of reading a file.
struct Loaded {
  std::unique_ptr<Device> device;
  std::unique_ptr<Model> model;
};
Loaded load(const std::string& model_path);

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
std::string read_file(const std::string& path);

}  // namespace kvz::cli
