// Continuous batching (Forward::run_batch) on a real checkpoint (stories260K), on the CPU backend
// and on Vulkan: several queries over private copies of one KVzip-compressed (ragged) cache,
// decoded together one batched forward per step, give exactly the greedy answers that
// Session::generate gives for each query alone (tests/model).
#include "model/forward.h"
#include "model/session.h"
#include "runtime/ops/sampling.h"
#include "tests/common/test_device.h"
#include "tests/model/test_data.h"

namespace kvz::test {
namespace {

constexpr const char* kContext =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her red ball. One day, she saw a big dog under a tree. The dog was sad because it was "
    "lost. Lily said, \"Do not be sad, dog. I will help you find your home.\" They walked and "
    "walked until they found a small house with a blue door. A kind old man opened the door.";

class BatchForwardTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    dev = backend_device(GetParam());
    if (!dev) GTEST_SKIP() << "no Vulkan device";
    model = Model::load(*dev, data_path("stories260K/stories260K.bin"));
  }
  Device* dev = nullptr;
  std::unique_ptr<Model> model;
};

// The sessions of these tests: chunks small enough for several forwards over the story.
SessionOptions small_session() {
  SessionOptions so;
  so.prefill_chunk = 64;
  so.score_chunk = 48;
  so.instruction = "";
  return so;
}

TEST_P(BatchForwardTest, BatchedGreedyEqualsEachQueryAlone) {
  constexpr int kSteps = 20;
  SessionOptions so = small_session();
  Session s(*model, so);
  s.prefill(kContext);
  s.score();
  s.prune(0.3);  // ragged heads: each keeps its own rows
  const std::vector<std::string> queries = {"Who was lost?", "What color was the door?",
                                            "Where did Lily play with her ball every day?"};
  GenerateOptions g;
  g.max_new_tokens = kSteps;
  g.ignore_eos = true;
  std::vector<std::vector<int32_t>> alone;
  for (const std::string& q : queries) alone.push_back(s.generate(q, g).tokens);

  // The same queries on private copies of the compressed cache, prompts of different lengths.
  const int B = static_cast<int>(queries.size());
  Forward fwd(*model, 64, B);
  Recorder rec(*dev);
  Buffer ids_buf = dev->alloc(static_cast<size_t>(B) * 4, MemoryKind::kReadback);
  const Tensor ids = ids_buf.tensor(DType::kI32, {B});
  Buffer first_buf = dev->alloc(4, MemoryKind::kReadback);
  const Tensor first = first_buf.tensor(DType::kI32, {1});
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<int32_t> next(B), pos(B);
  for (int b = 0; b < B; ++b) {
    caches.push_back(s.cache().clone(rec));
    const std::vector<int32_t> prompt = query_tokens(*model, queries[b]);
    std::vector<int32_t> p(prompt.size());
    for (size_t i = 0; i < p.size(); ++i)
      p[i] = static_cast<int32_t>(s.n_prefix() + s.n_context() + static_cast<int64_t>(i));
    fwd.run(rec, prompt, p, *caches[b], 1);
    argmax(rec, {fwd.logits().slice(0, 1), first});
    rec.finish();
    dev->download(first, &next[b]);
    pos[b] = p.back() + 1;
  }
  std::vector<std::vector<int32_t>> batched(B);
  std::vector<KvCache*> views;
  for (auto& c : caches) views.push_back(c.get());
  for (int step = 0; step < kSteps; ++step) {
    for (int b = 0; b < B; ++b) batched[b].push_back(next[b]);
    if (step + 1 == kSteps) break;
    fwd.run_batch(rec, next, pos, views);
    argmax(rec, {fwd.logits().slice(0, B), ids});
    for (int b = 0; b < B; ++b) ++pos[b];
    rec.finish();
    dev->download(ids, next.data());
  }
  for (int b = 0; b < B; ++b) EXPECT_EQ(batched[b], alone[b]) << "query " << b;
  // The context cache itself was never touched by the batched requests.
  EXPECT_EQ(s.generate(queries[0], g).tokens, alone[0]);
}

TEST_P(BatchForwardTest, GenerateBatchEqualsGenerate) {
  SessionOptions so = small_session();
  so.max_batch = 2;  // three prompts: a batch of two, then one
  Session s(*model, so);
  s.prefill(kContext);
  s.score();
  s.prune(0.3);
  const std::vector<std::string> queries = {"Who was lost?", "What color was the door?",
                                            "Where did Lily play with her ball every day?"};
  GenerateOptions g;
  g.max_new_tokens = 24;
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string& q : queries) prompts.push_back(query_tokens(*model, q));
  const std::vector<GenerateResult> got = s.generate_batch(prompts, g);
  ASSERT_EQ(got.size(), queries.size());
  for (size_t i = 0; i < queries.size(); ++i) {
    const GenerateResult alone = s.generate(queries[i], g);
    EXPECT_EQ(got[i].tokens, alone.tokens) << "query " << i;
    EXPECT_EQ(got[i].text, alone.text) << "query " << i;
    EXPECT_EQ(got[i].n_prompt_tokens, static_cast<int>(prompts[i].size()));
    // Each answer carries its share of its group's prompt and decode time.
    EXPECT_GT(got[i].prefill_ms, 0.0) << "query " << i;
    EXPECT_GT(got[i].decode_ms, 0.0) << "query " << i;
  }
  EXPECT_DOUBLE_EQ(got[0].prefill_ms, got[1].prefill_ms);  // the batch of two splits evenly
  // The session's cache is left as it was: the answers after the batch are unchanged.
  EXPECT_EQ(s.generate_batch(prompts, g)[0].tokens, got[0].tokens);
  std::vector<std::vector<int32_t>> with_empty = prompts;
  with_empty.emplace_back();
  EXPECT_THROW(s.generate_batch(with_empty, g), InputError);
}

// Answers from several pruned copies of one session (eval's cells) in one batch equal the
// answers each pruned cache gives alone, with the batch split over groups and one at a time.
TEST_P(BatchForwardTest, GenerateBatchFromSeveralCaches) {
  SessionOptions so = small_session();
  so.max_batch = 3;  // four prompts: a batch of three, then one
  Session s(*model, so);
  s.set_retain(true);
  s.prefill(kContext);
  s.score();
  const std::vector<std::string> queries = {"Who was lost?", "What color was the door?"};
  GenerateOptions g;
  g.max_new_tokens = 16;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::unique_ptr<KvCache>> copies;
  std::vector<const KvCache*> from;
  std::vector<GenerateResult> alone;
  for (double ratio : {0.1, 0.6}) {
    s.prune(ratio);
    copies.push_back(s.copy_cache());
    for (const std::string& q : queries) {
      alone.push_back(s.generate(q, g));
      prompts.push_back(query_tokens(*model, q));
      from.push_back(copies.back().get());
    }
  }
  // The two ratios must give different caches for the test to mean anything.
  ASSERT_NE(copies[0]->bytes_in_use(), copies[1]->bytes_in_use());
  s.restore_full();
  const std::vector<GenerateResult> got = s.generate_batch(prompts, g, from);
  ASSERT_EQ(got.size(), alone.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, alone[i].tokens) << "prompt " << i;
    EXPECT_EQ(got[i].text, alone[i].text) << "prompt " << i;
  }
  // max_batch 1 answers one at a time from each named cache and gives the same.
  SessionOptions one = so;
  one.max_batch = 1;
  Session s1(*model, one);
  s1.prefill(kContext);
  const std::vector<GenerateResult> serial = s1.generate_batch(prompts, g, from);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(serial[i].tokens, alone[i].tokens) << i;
  // A count that does not match the prompts is an InputError.
  EXPECT_THROW(s.generate_batch(prompts, g, std::span(from).subspan(1)), InputError);
}

INSTANTIATE_TEST_SUITE_P(Backends, BatchForwardTest, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "vulkan" : "cpu"; });

}  // namespace
}  // namespace kvz::test
