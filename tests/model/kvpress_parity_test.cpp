// KVzip scoring and pruning parity with NVIDIA kvpress KVzipPress (tests/data/kvpress, made by
// tools/make_kvpress_goldens.py): the same prefilled ids, the same reconstruction inputs, kvpress'
// sink rule and bottom-k selection. Per-layer Spearman correlation of the scores >= 0.99 and
// kept-set overlap >= 0.98 at 70% removed, on a tiny random Qwen3 model, on SmolLM2-135M and on
// Qwen2.5-Coder-0.5B over three 2048-token chunks (the real models skipped when not fetched)
// (tests/model).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "model/session.h"
#include "tests/common/test_device.h"
#include "tests/model/test_data.h"

namespace kvz::test {
namespace {

using nlohmann::json;

// Ranks with ties averaged.
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * static_cast<double>(i + j);
    i = j + 1;
  }
  return r;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  auto ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n,
         mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

std::string model_path(const json& g) {
  const std::string file = g["model"]["file"].get<std::string>();
  if (std::filesystem::exists(data_path("kvpress/" + file))) return data_path("kvpress/" + file);
  return model_dir() + "/" + file;
}

class KvpressParity : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(KvpressParity, ScoresAndKeptSetMatch) {
  const auto& [name, vulkan] = GetParam();
  Device* dev = vulkan ? vk_device() : &cpu_device();
  if (!dev) GTEST_SKIP() << "no Vulkan device";
  // A software Vulkan driver (lavapipe) runs these shaders slowly: CI covers it with the smallest
  // golden; the CPU backend and real GPUs run them all.
  if (vulkan && dev->caps().software && name != "qwen3_tiny_c128")
    GTEST_SKIP() << "software Vulkan device: covered by qwen3_tiny_c128";
  std::ifstream f(data_path("kvpress/" + name + ".json"));
  const json g = json::parse(f);
  const std::string path = model_path(g);
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "model not fetched: " << path;
  auto model = Model::load(*dev, path);

  const auto ids = g["input_ids"].get<std::vector<int32_t>>();
  const int64_t P = g["prefix_length"].get<int64_t>(), N = static_cast<int64_t>(ids.size());
  const auto shape = g["shape"].get<std::vector<int64_t>>();
  const int L = static_cast<int>(shape[0]), H = static_cast<int>(shape[1]);
  ASSERT_EQ(shape[2], N);
  ASSERT_EQ(L, model->config().n_layers);
  ASSERT_EQ(H, model->config().n_kv_heads);
  const int chunk = g["press"]["chunk_size"].get<int>();
  const auto suffix = g["suffix_ids"].get<std::vector<int32_t>>();
  const json& chunks = g["chunks"];

  // kvpress' prompts, recovered from its recorded inputs: repeat_ids[0] = first + suffix + chunk,
  // repeat_ids[t] = next_prefix + 8 previous ids + suffix + chunk.
  ReconstructionPrompts pr;
  pr.postfix = suffix;
  auto r0 = chunks[0]["repeat_ids"].get<std::vector<int32_t>>();
  const int64_t m0 = chunks[0]["end"].get<int64_t>() - chunks[0]["start"].get<int64_t>();
  pr.first.assign(r0.begin(), r0.end() - m0 - static_cast<int64_t>(suffix.size()));
  if (chunks.size() > 1) {
    auto r1 = chunks[1]["repeat_ids"].get<std::vector<int32_t>>();
    const int64_t m1 = chunks[1]["end"].get<int64_t>() - chunks[1]["start"].get<int64_t>();
    pr.next_prefix.assign(r1.begin(), r1.end() - m1 - static_cast<int64_t>(suffix.size()) - 8);
  }
  std::span<const int32_t> context(ids.data() + P, static_cast<size_t>(N - P));
  for (const auto& c : chunks) {  // our input layout reproduces every recorded kvpress input
    const int64_t a = c["start"].get<int64_t>() - P, b = c["end"].get<int64_t>() - P;
    EXPECT_EQ(reconstruction_input(context, a, b, pr, 8),
              c["repeat_ids"].get<std::vector<int32_t>>())
        << "chunk at " << a;
    EXPECT_EQ(c["sink"].get<int64_t>(), std::min<int64_t>(4, P + a));
  }

  SessionOptions so;
  so.score_chunk = chunk;
  Session s(*model, so);
  s.prefill_tokens(std::span<const int32_t>(ids.data(), static_cast<size_t>(P)), context);
  CompressorOptions co;
  co.chunk = chunk;
  co.sinks = SinkPolicy::kKvpress;
  const Scores& ours = s.score(co, {}, &pr);

  std::vector<uint8_t> raw =
      read_bytes(data_path("kvpress/" + g["scores_file"].get<std::string>()));
  ASSERT_EQ(raw.size(), static_cast<size_t>(L) * H * N * 4);
  const auto* ref = reinterpret_cast<const float*>(raw.data());
  double worst = 1.0;
  for (int il = 0; il < L; ++il) {
    std::vector<double> a, b;
    for (int ih = 0; ih < H; ++ih)
      for (int64_t j = P; j < N; ++j) {
        a.push_back(ours.at(il, ih, j - P));
        b.push_back(
            ref[(static_cast<size_t>(il) * H + static_cast<size_t>(ih)) * static_cast<size_t>(N) +
                static_cast<size_t>(j)]);
      }
    const double rho = spearman(a, b);
    worst = std::min(worst, rho);
    EXPECT_GE(rho, 0.99) << "layer " << il;
  }

  const KeepSet keep = prune_kvpress(ours, 0.3, P, N);
  std::vector<uint8_t> kept = read_bytes(data_path("kvpress/" + g["kept_file"].get<std::string>()));
  int64_t both = 0, theirs = 0, mine = 0;
  for (int il = 0; il < L; ++il)
    for (int ih = 0; ih < H; ++ih) {
      std::vector<uint8_t> m(static_cast<size_t>(N), 0);
      for (int32_t r : keep.rows[il][ih]) m[static_cast<size_t>(r)] = 1;
      for (int64_t j = 0; j < N; ++j) {
        const uint8_t t =
            kept[(static_cast<size_t>(il) * H + static_cast<size_t>(ih)) * static_cast<size_t>(N) +
                 static_cast<size_t>(j)];
        theirs += t, mine += m[static_cast<size_t>(j)], both += t && m[static_cast<size_t>(j)];
      }
    }
  const double overlap = static_cast<double>(both) / static_cast<double>(theirs);
  EXPECT_EQ(mine, theirs) << "kept counts differ";
  EXPECT_GE(overlap, 0.98);
  std::printf(
      "[ kvpress  ] %s: worst per-layer Spearman %.5f, kept-set overlap %.5f (%lld pairs kept)\n",
      name.c_str(), worst, overlap, static_cast<long long>(theirs));
}

INSTANTIATE_TEST_SUITE_P(Goldens, KvpressParity,
                         ::testing::Combine(::testing::Values("qwen3_tiny_c2048", "qwen3_tiny_c128",
                                                              "smollm2_c2048", "smollm2_c128",
                                                              "qwen25_c2048"),
                                            ::testing::Bool()),
                         [](const auto& p) {
                           return std::get<0>(p.param) +
                                  (std::get<1>(p.param) ? "_Vulkan" : "_Cpu");
                         });

}  // namespace
}  // namespace kvz::test
