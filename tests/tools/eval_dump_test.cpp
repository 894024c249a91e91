// `kvzip eval --dump-samples/--dump-scores` (tools/eval_dump): the dumped token ids are what the
// eval feeds. From the ids alone (prefix, context, the reconstruction inputs of every chunk) a
// fresh session reproduces the dumped KVzip scores bit for bit, and so does the eval's own text
// path (prefill(context) + score()); each query's prompt ids answer like generate(question).
// stories260K on the CPU backend (tests/tools).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/session.h"
#include "tests/common/test_device.h"
#include "tests/model/test_data.h"
#include "tools/eval_dump.h"

namespace kvz::cli {
namespace {

using nlohmann::json;
using test::data_path;

std::vector<float> read_f32(const std::string& path) {
  std::vector<uint8_t> raw = test::read_bytes(path);
  std::vector<float> v(raw.size() / 4);
  std::memcpy(v.data(), raw.data(), v.size() * 4);
  return v;
}

TEST(EvalDump, IdsReproduceTheEvalsScoresAndAnswers) {
  Device& dev = test::cpu_device();
  auto model = Model::load(dev, data_path("stories260K/stories260K.bin"));
  TaskOptions to;
  to.task = "niah";
  to.num = 2;
  to.length = 300;
  to.queries = 2;
  to.data_dir = data_path("../../tools/data/eval");
  const std::vector<EvalSample> samples = make_task(to, model->tokenizer());
  const auto dir =
      std::filesystem::temp_directory_path() / ("kvz_dump_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "samples.jsonl").string();
  const int chunk = 64;
  dump_samples(*model, samples, {file, (dir / "scores").string(), "niah", chunk, 0});

  std::ifstream in(file);
  std::string line;
  int n_lines = 0;
  for (; std::getline(in, line); ++n_lines) {
    const json d = json::parse(line);
    const int i = d["index"].get<int>();
    ASSERT_EQ(i, n_lines);
    EXPECT_EQ(d["format"], "kvz-eval-sample/1");
    EXPECT_EQ(d["id"], samples[static_cast<size_t>(i)].id);
    const auto prefix = d["prefix_ids"].get<std::vector<int32_t>>();
    const auto context = d["context_ids"].get<std::vector<int32_t>>();
    const auto P = static_cast<int64_t>(prefix.size()), n = static_cast<int64_t>(context.size());
    ASSERT_GT(n, 2 * chunk);  // several reconstruction chunks

    // The chunks tile the context in order; the sinks are the whole prefix (original rule).
    const json& chunks = d["scoring"]["chunks"];
    int64_t at = P;
    for (const json& c : chunks) {
      EXPECT_EQ(c["start"].get<int64_t>(), at);
      EXPECT_LE(c["end"].get<int64_t>() - at, chunk);
      EXPECT_EQ(c["sink"].get<int64_t>(), P);
      at = c["end"].get<int64_t>();
    }
    EXPECT_EQ(at, P + n);

    // The prompts, recovered from the recorded inputs: chunk 0 = first + postfix + chunk, chunk 1 =
    // next_prefix + the 8 previous ids + postfix + chunk. The postfix is the query turn's tail.
    Session probe(*model);
    ReconstructionPrompts pr;
    pr.postfix = probe.reconstruction_prompts().postfix;
    auto r0 = chunks[0]["repeat_ids"].get<std::vector<int32_t>>();
    auto r1 = chunks[1]["repeat_ids"].get<std::vector<int32_t>>();
    const auto m0 = static_cast<size_t>(chunks[0]["end"].get<int64_t>() - P);
    const auto m1 =
        static_cast<size_t>(chunks[1]["end"].get<int64_t>() - chunks[1]["start"].get<int64_t>());
    ASSERT_GT(r0.size(), m0 + pr.postfix.size());
    pr.first.assign(r0.begin(), r0.end() - static_cast<int64_t>(m0 + pr.postfix.size()));
    pr.next_prefix.assign(r1.begin(), r1.end() - static_cast<int64_t>(m1 + pr.postfix.size() + 8));
    for (const json& c : chunks)
      EXPECT_EQ(reconstruction_input(context, c["start"].get<int64_t>() - P,
                                     c["end"].get<int64_t>() - P, pr, 8),
                c["repeat_ids"].get<std::vector<int32_t>>());

    const std::vector<float> dumped =
        read_f32((dir / "scores" / (std::to_string(i) + ".f32")).string());
    const ModelConfig& cfg = model->config();
    ASSERT_EQ(dumped.size(), static_cast<size_t>(cfg.n_layers * cfg.n_kv_heads * n));
    SessionOptions so;
    so.score_chunk = chunk;
    CompressorOptions co;
    co.chunk = chunk;
    Session from_ids(*model, so);
    from_ids.prefill_tokens(prefix, context);
    EXPECT_EQ(from_ids.score(co, {}, &pr).data, dumped) << "sample " << i << ": ids path";
    Session from_text(*model, so);
    from_text.prefill(samples[static_cast<size_t>(i)].context);
    EXPECT_EQ(from_text.score(co).data, dumped) << "sample " << i << ": the eval's text path";

    const json& qs = d["queries"];
    ASSERT_EQ(qs.size(), samples[static_cast<size_t>(i)].queries.size());
    GenerateOptions g;
    g.max_new_tokens = qs[0]["max_new_tokens"].get<int>();
    EXPECT_EQ(g.max_new_tokens, task_max_new_tokens("niah"));
    const std::string q0 = samples[static_cast<size_t>(i)].queries[0].question;
    EXPECT_EQ(qs[0]["question"], q0);
    EXPECT_EQ(qs[0]["metric"], "any_normalized");
    const std::string by_ids =
        from_text.generate_tokens(qs[0]["prompt_ids"].get<std::vector<int32_t>>(), g).text;
    EXPECT_EQ(by_ids, from_text.generate(q0, g).text);
  }
  EXPECT_EQ(n_lines, 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvz::cli
