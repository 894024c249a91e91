// Shared CLI helpers (tools/).
#include "tools/cli_util.h"

#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kvz::cli {

std::string default_model_path() {
  std::string dir;
  if (const char* env = std::getenv("KVZIP_MODELS")) {
    dir = env;
  } else {
    const char* home = std::getenv("HOME");
    dir = std::string(home ? home : ".") + "/.cache/kvzip/models";
  }
  std::string path = dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path))
    throw InputError("default model " + path +
                     " not found; run: tools/fetch_model.sh smollm2-135m");
  return path;
}

namespace {
// Where the weights hash of each model is remembered (model/identity.h): the XDG cache folder.
std::string identity_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return std::string(x) + "/kvzip/identity";
  if (const char* h = std::getenv("HOME"); h && *h)
    return std::string(h) + "/.cache/kvzip/identity";
  return {};
}
}  // namespace

Loaded load(const std::string& model_path) {
  Loaded l;
  // Inference policy of the CLI: with KVZIP_DEVICE unset and only a software Vulkan driver
  // (lavapipe) present, the CPU backend runs the same ops many times faster, so use it.
  // The library default (runtime/device.h) is unchanged; KVZIP_DEVICE=0 still picks lavapipe.
  const char* env = std::getenv("KVZIP_DEVICE");  // empty means unset, as in open_device()
  bool only_software = env == nullptr || env[0] == '\0';
  for (const DeviceCaps& c : list_devices())
    if (c.type != "cpu" && !c.software) only_software = false;
  if (only_software) {
    l.device = open_device("cpu");
    fmt::print(
        stderr,
        "note: no hardware GPU found; using the CPU backend, which is faster than a software "
        "Vulkan driver here (KVZIP_DEVICE=0 selects lavapipe)\n");
  } else {
    l.device = open_device();
  }
  fmt::print(stderr, "device: {} ({})\n", l.device->caps().name, l.device->caps().driver);
  if (model_path.rfind("synthetic:", 0) == 0) {
    // synthetic:NAME[:TYPE[:LAYERS]], e.g. synthetic:llama3.1-8b:q4_k or
    // synthetic:llama3.1-8b:q4_k:4
    std::string spec = model_path.substr(10), type = "f16", layers = "0";
    if (auto colon = spec.find(':'); colon != std::string::npos)
      type = spec.substr(colon + 1), spec.resize(colon);
    if (auto colon = type.find(':'); colon != std::string::npos)
      layers = type.substr(colon + 1), type.resize(colon);
    int n_layers = 0;
    if (auto [end, ec] = std::from_chars(layers.data(), layers.data() + layers.size(), n_layers);
        ec != std::errc() || end != layers.data() + layers.size() || n_layers < 0)
      throw InputError(fmt::format("'{}': layer count '{}' is not a number", model_path, layers));
    Progress bar("building", "layers");
    l.model = make_synthetic_model(
        *l.device, spec, dtype_from_name(type),
        [&](size_t done, size_t total) {
          bar(static_cast<int64_t>(done), static_cast<int64_t>(total));
        },
        n_layers);
  } else {
    Progress bar("loading", "MiB");
    l.model = Model::load(
        *l.device, model_path,
        [&](size_t done, size_t total) {
          bar(static_cast<int64_t>(done >> 20), static_cast<int64_t>(total >> 20));
        },
        identity_cache_dir());
  }
  const ModelConfig& c = l.model->config();
  fmt::print(stderr, "model: {} ({}, {} layers, d_model {}, heads {}/{}, {} of weights)\n", c.name,
             c.arch_name, c.n_layers, c.d_model, c.n_heads, c.n_kv_heads,
             human_bytes(static_cast<double>(l.model->weights().bytes)));
  return l;
}

void Progress::operator()(int64_t done, int64_t total) {
  if (total <= 0) return;
  // On a terminal: redraw in place. In a log: one line per 10% so logs stay short.
  static const bool tty = isatty(fileno(stderr)) != 0;
  if (!tty) {
    int64_t step = done * 10 / total;
    if (step == last_step_ && done < total) return;
    last_step_ = step;
  }
  constexpr int kWidth = 30;
  int filled = static_cast<int>(kWidth * done / total);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  fmt::print(stderr, "{}{:<9} [{}] {}/{} {} {:.1f}s", tty ? "\r" : "", label_, bar, done, total,
             unit_, s);
  if (done >= total || !tty) fmt::print(stderr, "\n");
  std::fflush(stderr);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) b /= 1024, ++i;
  return fmt::format("{:.{}f} {}", b, i ? 2 : 0, units[i]);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace kvz::cli
