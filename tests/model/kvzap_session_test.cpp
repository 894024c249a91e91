// Online KVzap in the session on a real checkpoint (stories260K with its committed tiny
// surrogates), CPU backend and Vulkan: a threshold that evicts nothing changes no token, prefill
// eviction equals the post-hoc rule and keeps prefix and window, decode evicts rows as they leave
// the window and evicted rows are really gone, queries without update_cache leave the compressed
// context as it was (tests/model).
#include <algorithm>
#include <cmath>
#include <limits>

#include "kvzip/pruner.h"
#include "model/kvzap_data.h"
#include "model/session.h"
#include "tests/common/test_device.h"
#include "tests/model/test_data.h"

namespace kvz::test {
namespace {

constexpr const char* kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her red ball. One day, she saw a big dog under a tree. The dog was sad because it was "
    "lost. Lily said, \"Do not be sad, dog. I will help you find your home.\" They walked and "
    "walked until they found a small house with a blue door. A kind old man opened the door.";

class KvzapSessionTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    dev = backend_device(GetParam());
    if (!dev) GTEST_SKIP() << "no Vulkan device";
    model = Model::load(*dev, data_path("stories260K/stories260K.bin"));
    zap = KvzapModel::load(data_path("stories260K/stories260K.mlp.kvzap"));
  }
  SessionOptions options(int prefill_chunk = 512) const {
    SessionOptions o;
    o.prefill_chunk = prefill_chunk;
    o.score_chunk = 64;
    o.instruction = "";
    return o;
  }
  GenerateOptions greedy(int n, bool update_cache) const {
    GenerateOptions g;
    g.max_new_tokens = n;
    g.ignore_eos = true;
    g.update_cache = update_cache;
    return g;
  }
  // The median surrogate score of the story's context rows (evicts about half of what is decided).
  float median_score() {
    Session s(*model, options());
    KvzapOptions o;
    o.threshold = -std::numeric_limits<float>::infinity();
    s.set_kvzap(&zap, o);
    s.prefill(kStory);
    std::vector<float> v = s.kvzap_scores().data;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  }
  int64_t rows(Session& s) { return s.cache().total_rows(); }
  Device* dev = nullptr;
  std::unique_ptr<Model> model;
  KvzapModel zap;
};

TEST_P(KvzapSessionTest, CommittedSurrogatesFitTheModel) {
  for (const char* f :
       {"stories260K/stories260K.linear.kvzap", "stories260K/stories260K.mlp.kvzap"}) {
    KvzapModel m = KvzapModel::load(data_path(f));
    EXPECT_NO_THROW(check_kvzap_model(m, *model, f));
  }
  KvzapModel wrong(KvzapKind::kLinear, 5, 64, 0, 4, "another model");
  EXPECT_THROW(check_kvzap_model(wrong, *model, "wrong"), FormatError);
}

// The device scorer (matmuls + GELU recorded in the forward) against the host surrogate
// (KvzapModel::predict, checked against naive loops in tests/kvzip) on the same hidden states.
TEST_P(KvzapSessionTest, DeviceScorerMatchesTheHostSurrogate) {
  for (const char* f :
       {"stories260K/stories260K.linear.kvzap", "stories260K/stories260K.mlp.kvzap"}) {
    const KvzapModel m = KvzapModel::load(data_path(f));
    const ModelConfig& c = model->config();
    const std::vector<int32_t> ids = model->tokenizer().encode(kStory, false, false);
    const auto n = static_cast<int64_t>(ids.size());
    std::vector<int32_t> pos(ids.size());
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
    Forward fwd(*model, static_cast<int>(n));
    KvCache cache(*dev, kv_cache_config(c));
    Recorder rec(*dev);
    KvzapScorer scorer(m, *dev, static_cast<int>(n));
    std::vector<std::vector<float>> h(static_cast<size_t>(c.n_layers));
    HiddenHook both = [&](Recorder& r, int il, const Tensor& ht) {
      r.finish();
      h[static_cast<size_t>(il)].resize(static_cast<size_t>(ht.numel()));
      dev->download(ht, h[static_cast<size_t>(il)].data());
      scorer.hook()(r, il, ht);
    };
    fwd.run(rec, ids, pos, cache, 0, nullptr, &both);
    scorer.fetch(rec, n);
    for (int il = 0; il < c.n_layers; ++il) {
      std::vector<float> want(static_cast<size_t>(n * c.n_kv_heads));
      m.predict(il, h[static_cast<size_t>(il)].data(), n, want.data());
      const std::vector<float>& got = scorer.scores(il);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], 2e-3 * (1.0 + std::abs(want[i])))
            << f << " layer " << il << " " << i;
      }
    }
  }
}

TEST_P(KvzapSessionTest, ThresholdThatEvictsNothingChangesNoToken) {
  Session plain(*model, options()), zapped(*model, options());
  KvzapOptions o;
  o.threshold = -std::numeric_limits<float>::infinity();
  o.window = 8;
  zapped.set_kvzap(&zap, o);
  plain.prefill(kStory);
  zapped.prefill(kStory);
  EXPECT_GT(zapped.kvzap_decided(), 0);
  EXPECT_EQ(zapped.kvzap_evicted(), 0);
  const auto a = plain.generate("Who was lost?", greedy(24, true));
  const auto b = zapped.generate("Who was lost?", greedy(24, true));
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(rows(plain), rows(zapped));
}

TEST_P(KvzapSessionTest, PrefillEvictionEqualsThePostHocRuleAndKeepsPrefixAndWindow) {
  const float tau = median_score();
  const int window = 16;
  Session online(*model, options()), retained(*model, options());
  KvzapOptions o;
  o.threshold = tau;
  o.window = window;
  online.set_kvzap(&zap, o);
  online.prefill(kStory);
  EXPECT_GT(online.kvzap_evicted(), 0);
  // The same rule applied afterwards to a dense cache (what kvzip eval does).
  retained.set_retain(true);
  retained.prefill(kStory);
  retained.set_scores(online.kvzap_scores());
  retained.prune_threshold(tau, window);
  const int64_t n_prefix = online.n_prefix(), n_rows = n_prefix + online.n_context();
  const KeepSet want = prune_threshold(online.kvzap_scores(), tau, window, n_prefix, n_rows);
  const ModelConfig& c = model->config();
  for (int il = 0; il < c.n_layers; ++il)
    for (int ih = 0; ih < c.n_kv_heads; ++ih) {
      const std::vector<int32_t>& p = online.cache().positions(il, ih);
      EXPECT_EQ(p, want.rows[il][ih]) << "layer " << il << " head " << ih;
      EXPECT_EQ(p, retained.cache().positions(il, ih));
      for (int32_t q = 0; q < n_prefix; ++q) {
        EXPECT_TRUE(std::binary_search(p.begin(), p.end(), q)) << "prefix row " << q;
      }
      for (int64_t q = n_rows - window; q < n_rows; ++q) {
        EXPECT_TRUE(std::binary_search(p.begin(), p.end(), static_cast<int32_t>(q)))
            << "window row " << q;
      }
    }
  EXPECT_EQ(online.generate("Who was lost?", greedy(12, false)).tokens,
            retained.generate("Who was lost?", greedy(12, false)).tokens);
}

TEST_P(KvzapSessionTest, DecodeEvictsRowsLeavingTheWindowAndTheyAreGone) {
  const float tau = median_score();
  const int window = 8;
  Session s(*model, options(7));  // chunked prefill: eviction after every chunk
  KvzapOptions o;
  o.threshold = tau;
  o.window = window;
  s.set_kvzap(&zap, o);
  s.prefill(kStory);
  const int64_t evicted_prefill = s.kvzap_evicted();
  const ModelConfig& c = model->config();
  const int64_t n_heads = int64_t{c.n_layers} * c.n_kv_heads;
  const auto r = s.generate("Who was lost?", greedy(48, true));
  EXPECT_GT(s.kvzap_evicted(), evicted_prefill) << "nothing evicted while decoding";
  // Tokens that went through the model: prefix + context + prompt + all but the last new token.
  const int64_t fed =
      s.n_prefix() + s.n_context() + r.n_prompt_tokens + static_cast<int64_t>(r.tokens.size()) - 1;
  EXPECT_EQ(rows(s), n_heads * fed - s.kvzap_evicted()) << "evicted rows still cached";
  for (int il = 0; il < c.n_layers; ++il)
    for (int ih = 0; ih < c.n_kv_heads; ++ih) {
      const std::vector<int32_t>& p = s.cache().positions(il, ih);
      for (int64_t q = fed - window; q < fed; ++q) {
        EXPECT_TRUE(std::binary_search(p.begin(), p.end(), static_cast<int32_t>(q)))
            << "window row " << q;
      }
      for (int32_t q = 0; q < s.n_prefix(); ++q) {
        EXPECT_TRUE(std::binary_search(p.begin(), p.end(), q)) << "prefix row " << q;
      }
    }
}

TEST_P(KvzapSessionTest, QueriesWithoutUpdateCacheLeaveTheCompressedContextAlone) {
  Session s(*model, options());
  KvzapOptions o;
  o.threshold = median_score();
  o.window = 4;  // a long answer pushes query rows out of the window
  s.set_kvzap(&zap, o);
  s.prefill(kStory);
  std::vector<std::vector<int32_t>> before;
  const ModelConfig& c = model->config();
  for (int il = 0; il < c.n_layers; ++il)
    for (int ih = 0; ih < c.n_kv_heads; ++ih) before.push_back(s.cache().positions(il, ih));
  const int64_t evicted = s.kvzap_evicted();
  const auto a = s.generate("Who was lost?", greedy(24, false));
  EXPECT_GT(s.kvzap_evicted(), evicted) << "query/answer rows should be decided too";
  size_t k = 0;
  for (int il = 0; il < c.n_layers; ++il)
    for (int ih = 0; ih < c.n_kv_heads; ++ih) {
      EXPECT_EQ(s.cache().positions(il, ih), before[k++]);
    }
  EXPECT_EQ(s.generate("Who was lost?", greedy(24, false)).tokens, a.tokens);
}

INSTANTIATE_TEST_SUITE_P(Backends, KvzapSessionTest, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "vulkan" : "cpu"; });

}  // namespace
}  // namespace kvz::test
