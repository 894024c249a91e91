// Shared CLI helpers (tools/).
#include "tools/cli_util.h"

#include "runtime/kv_quant.h"

#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace kvz::cli {

namespace {

constexpr KnownModel kKnown[] = {
    {"smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf", true},
    {"gemma3-270m", "gemma-3-270m-q4_k_m.gguf", false},
    {"qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct.gguf", true},
};

namespace fs = std::filesystem;

}  // namespace

std::span<const KnownModel> known_models() { return kKnown; }

std::string models_dir() {
  if (const char* env = std::getenv("KVZIP_MODELS"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/kvzip/models";
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

std::string resolve_model(const std::string& m) {
  const std::string name = m.empty() ? "smollm2-135m" : m;
  if (name.rfind("synthetic:", 0) == 0) return name;
  for (const KnownModel& k : kKnown) {
    if (name != k.name) continue;
    std::string path = models_dir() + "/" + k.file;
    if (!fs::exists(path))
      throw InputError(
          fmt::format("model '{}' ({}) not found; run: tools/fetch_model.sh {}", name, path, name));
    return path;
  }
  std::error_code ec;
  const auto st = fs::status(name, ec);
  if (ec || !fs::exists(st)) {
    std::string names;
    for (const KnownModel& k : kKnown)
      names += fmt::format("{}{}", names.empty() ? "" : ", ", k.name);
    throw InputError(fmt::format(
        "-m {}: no such file or folder (a model file, a safetensors folder, synthetic:NAME, or one "
        "of {})",
        name, names));
  }
  if (!fs::is_regular_file(st) && !fs::is_directory(st))
    throw InputError(fmt::format("-m {}: not a regular file or a folder", name));
  return name;
}

std::string default_model_path() { return resolve_model(""); }

Loaded load(const std::string& model_path, int ctx_size) {
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
  if (ctx_size > 0) l.model->limit_context(ctx_size);
  const ModelConfig& c = l.model->config();
  fmt::print(stderr,
             "model: {} ({}, {} layers, d_model {}, heads {}/{}, {} of weights, context {})\n",
             c.name, c.arch_name, c.n_layers, c.d_model, c.n_heads, c.n_kv_heads,
             human_bytes(static_cast<double>(l.model->weights().bytes)), c.max_context);
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

std::string data_dir(std::string_view sub) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path d = exe.parent_path().parent_path() / "share" / "kvzip-vk" / sub;
    if (fs::is_directory(d, ec)) return d.string();
  }
  throw InputError(fmt::format(
      "bundled data '{}' not found in share/kvzip-vk next to the binary's folder ({}); install "
      "with cmake --install or run the binary from its build folder",
      sub, exe.string()));
}

namespace {

// "WHAT PATH" or, from a CLI11 validator (which names the option itself), "PATH".
std::string named(std::string_view what, const std::string& path) {
  return what.empty() ? path : fmt::format("{} {}", what, path);
}

}  // namespace

void check_input_file(const std::string& path, std::string_view what) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw InputError(named(what, path) + ": no such file");
  if (!fs::is_regular_file(st)) throw InputError(named(what, path) + ": not a regular file");
  if (::access(path.c_str(), R_OK) != 0) throw InputError(named(what, path) + ": not readable");
}

void check_output_file(const std::string& path, std::string_view what) {
  if (path.empty()) return;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(named(what, path) + ": is a folder");
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec))
    throw InputError(fmt::format("{}: folder {} does not exist", named(what, path), dir.string()));
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw InputError(fmt::format("{}: folder {} is not writable", named(what, path), dir.string()));
}

std::string read_prompt(const std::optional<std::string>& prompt, const std::string& file) {
  std::string text;
  if (!file.empty()) {
    text = read_file(file);
  } else if (prompt && *prompt != "-") {
    text = *prompt;
  } else {
    if (isatty(fileno(stdin)))
      fmt::print(stderr, "reading the prompt from stdin (end it with Ctrl-D)\n");
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw InputError(file.empty() ? "empty prompt (give -p TEXT, -f FILE or text on stdin)"
                                  : "empty prompt file " + file);
  return text;
}

std::string version_string() {
  return fmt::format("kvzip {} (git {}, {} build; shaders: glslc, KHR coopmat {}, NV coopmat2 {})",
                     KVZ_VERSION, KVZ_GIT_HASH, KVZ_BUILD_TYPE, KVZ_SHADERS_KHR ? "yes" : "no",
                     KVZ_SHADERS_CM2 ? "yes" : "no");
}

CacheTypeArgs& cache_type_args() {
  static CacheTypeArgs args;
  return args;
}

SessionOptions session_options() {
  SessionOptions so;
  so.cache_type_k = kv_cache_type_from_name(cache_type_args().k, "--cache-type-k");
  so.cache_type_v = kv_cache_type_from_name(cache_type_args().v, "--cache-type-v");
  return so;
}

std::string cache_type_label(const SessionOptions& so) {
  if (so.cache_type_k == DType::kF16 && so.cache_type_v == DType::kF16) return "";
  return fmt::format("{} K / {} V", dtype_name(so.cache_type_k), dtype_name(so.cache_type_v));
}

}  // namespace kvz::cli
