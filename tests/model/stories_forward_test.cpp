// End-to-end forward pass on a real checkpoint: stories260K (llama2.c, GQA 8/4) greedy output and
// first logits against an independent float32 numpy reference, on the CPU backend and on Vulkan
// (tests/model).
#include <fstream>
#include <nlohmann/json.hpp>

#include "kvzip/kv_cache.h"
#include "model/forward.h"
#include "model/model.h"
#include "runtime/ops/binding_chunks.h"
#include "runtime/ops/sampling.h"
#include "tests/common/test_device.h"
#include "tests/model/test_data.h"

namespace kvz::test {
namespace {

nlohmann::json expected() {
  std::ifstream f(data_path("stories260K/expected_greedy_256.json"));
  return nlohmann::json::parse(f);
}

// Greedy decoding from BOS for `steps` tokens; also returns the logits of the first 3 steps.
std::vector<int32_t> greedy(Device& dev, int steps, std::vector<std::vector<float>>* first_logits) {
  auto model = Model::load(dev, data_path("stories260K/stories260K.bin"));
  const ModelConfig& c = model->config();
  Forward fwd(*model, 8, 1);
  KvCache cache(dev, kv_cache_config(c));
  Recorder rec(dev);
  Buffer out_buf = dev.alloc(4);
  Tensor out = out_buf.tensor(DType::kI32, {1});
  std::vector<int32_t> ids;
  int32_t tok = 1;
  for (int32_t pos = 0; pos < steps; ++pos) {
    fwd.run(rec, std::span<const int32_t>(&tok, 1), std::span<const int32_t>(&pos, 1), cache, 1);
    argmax(rec, {fwd.logits().slice(0, 1), out});
    rec.finish();
    if (first_logits && pos < 3) {
      std::vector<float> l(static_cast<size_t>(c.n_vocab));
      dev.download(fwd.logits().slice(0, 1), l.data());
      first_logits->push_back(std::move(l));
    }
    dev.download(out, &tok);
    ids.push_back(tok);
  }
  return ids;
}

void check_against_reference(Device& dev, int steps) {
  auto ref = expected();
  std::vector<std::vector<float>> logits;
  auto ids = greedy(dev, steps, &logits);
  std::vector<int32_t> want = ref["token_ids"].get<std::vector<int32_t>>();
  want.resize(static_cast<size_t>(steps));
  EXPECT_EQ(ids, want) << "greedy continuation differs from the numpy reference";
  const auto& top5 = ref["logits_top5_first_steps"];
  for (size_t step = 0; step < 3; ++step) {
    const auto& entries = top5[step].is_object() ? top5[step]["top5"] : top5[step];
    for (const auto& e : entries) {
      int id = e[0].get<int>();
      double want_logit = e[1].get<double>();
      EXPECT_NEAR(logits[step][static_cast<size_t>(id)], want_logit, 2e-3)
          << "step " << step << " token " << id;
    }
  }
}

TEST(StoriesForward, CpuBackendMatchesNumpyReference) {
  check_against_reference(cpu_device(), 256);
}

class StoriesForwardVk : public VkTest {};
TEST_F(StoriesForwardVk, VulkanMatchesNumpyReference) { check_against_reference(*gpu, 64); }

// With maxStorageBufferRange lowered to 32 KiB the 512 x 64 f32 embedding (128 KiB, tied output
// head) is bound as four row chunks in the embedding lookup and the logits matvec; every output
// element is computed by the same kernel either way, so tokens and logits are bit-identical.
TEST_F(StoriesForwardVk, SplitBindingsGiveIdenticalTokensAndLogits) {
  Device* split = vk_device_with_range(32 << 10);
  ASSERT_NE(split, nullptr);
  {
    auto model = Model::load(*split, data_path("stories260K/stories260K.bin"));
    EXPECT_EQ(binding_chunks(model->weights().tok_embd, split->caps()).size(), 4u);
  }
  std::vector<std::vector<float>> want_logits, got_logits;
  auto want = greedy(*gpu, 64, &want_logits);
  auto got = greedy(*split, 64, &got_logits);
  EXPECT_EQ(got, want);
  EXPECT_EQ(got_logits, want_logits);
}

}  // namespace
}  // namespace kvz::test
