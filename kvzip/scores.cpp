// Head-level scores: reduction and a small JSON file format (kvzip/).
#include "kvzip/scores.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/atomic_file.h"
#include "runtime/error.h"

namespace kvz {
namespace {
// 2: the model identity is XXH3-128 of all weights (model/identity.h); version 1 files are
// refused (recompute them with --save-head-scores).
constexpr int kHeadScoresVersion = 2;
}  // namespace

HeadScores HeadScores::from(const Scores& s, std::string model_identity) {
  HeadScores h;
  h.n_layers = s.n_layers;
  h.n_kv_heads = s.n_kv_heads;
  h.model_identity = std::move(model_identity);
  h.data.assign(static_cast<size_t>(s.n_layers * s.n_kv_heads), 0.0f);
  for (int il = 0; il < s.n_layers; ++il)
    for (int ih = 0; ih < s.n_kv_heads; ++ih)
      for (int64_t j = 0; j < s.n_ctx; ++j)
        h.data[static_cast<size_t>(il * s.n_kv_heads + ih)] =
            std::max(h.data[static_cast<size_t>(il * s.n_kv_heads + ih)], s.at(il, ih, j));
  return h;
}

void HeadScores::save(const std::string& path) const {
  nlohmann::json j = {{"format", "kvzip-head-scores"}, {"version", kHeadScoresVersion},
                      {"model", model_identity},       {"n_layers", n_layers},
                      {"n_kv_heads", n_kv_heads},      {"scores", data}};
  write_file_atomic(path, j.dump(1) + "\n");
}

HeadScores HeadScores::load(const std::string& path) {
  const std::vector<uint8_t> bytes = read_regular_file(path);
  HeadScores h;
  try {
    auto j = nlohmann::json::parse(bytes.begin(), bytes.end());
    if (j.at("format") != "kvzip-head-scores")
      throw FormatError(path + ": not a kvzip head-score file (format)");
    if (j.at("version") != kHeadScoresVersion)
      throw FormatError(
          fmt::format("{}: head-score file version {} (this build reads {}; "
                      "recompute it with --save-head-scores)",
                      path, j.at("version").dump(), kHeadScoresVersion));
    h.n_layers = j.at("n_layers").get<int>();
    h.n_kv_heads = j.at("n_kv_heads").get<int>();
    h.model_identity = j.at("model").get<std::string>();
    h.data = j.at("scores").get<std::vector<float>>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": malformed head-score file: " + e.what());
  }
  if (h.n_layers <= 0 || h.n_kv_heads <= 0 ||
      h.data.size() != static_cast<size_t>(int64_t{h.n_layers} * h.n_kv_heads))
    throw FormatError(fmt::format("{}: {} scores for {} layers x {} heads", path, h.data.size(),
                                  h.n_layers, h.n_kv_heads));
  for (float s : h.data)
    if (!std::isfinite(s)) throw FormatError(fmt::format("{}: a non-finite head score", path));
  return h;
}

}  // namespace kvz
