// score_context driver with a fake model pass and a fake score kernel (tests/kvzip): chunking,
// reconstruction inputs, sink rules, positions N.., score placement, and refusal to score without
// the prefilled cache. The real attn_score kernel is tested in tests/runtime.
#include "kvzip/compressor.h"

#include <cmath>

#include "tests/kvzip/kv_util.h"

namespace kvz::test {
namespace {

constexpr int kL = 2, kH = 2, kD = 4, kHeads = 4;
KvCacheConfig config() { return {kL, kH, kD, {}}; }

struct KernelCall {
  int il, n_sink, t0, t1, s0;
  float scale;
  int64_t n_q;
};

// Fake model: appends the input at positions `target.rows() + pos_shift` to `target` (K/V from
// kv_value), then calls the hook of every layer except `skip_layer`.
struct FakePass {
  Device& dev;
  Recorder& rec;
  KvCache* target;
  int pos_shift = 0, skip_layer = -1;
  std::vector<std::vector<int32_t>> inputs;
  std::vector<Buffer> keep;

  void operator()(std::span<const int32_t> tokens, const ScoreHook& hook) {
    inputs.emplace_back(tokens.begin(), tokens.end());
    const int n = static_cast<int>(tokens.size());
    append_tokens(dev, *target, static_cast<int32_t>(target->rows(0, 0)) + pos_shift, n);
    std::vector<float> q(static_cast<size_t>(n * kHeads * kD), 0.0f);
    Tensor tq = upload_f32(dev, keep, {n, kHeads, kD}, q);
    for (int il = 0; il < kL; ++il)
      if (il != skip_layer) hook(rec, il, tq, target->layer(il));
  }
};

// Fake kernel: score[h, j] = first key element of row t0 + j of head h (found through the block
// table and key pool the driver hands over); also checks rows s0.. hold the input at positions N...
struct FakeKernel {
  Device& dev;
  std::vector<KernelCall> calls;
  bool input_rows_ok = true;

  void operator()(Recorder& rec, int il, const AttnScoreArgs& a) {
    rec.finish();
    calls.push_back({il, a.n_sink, a.t0, a.t1, a.s0, a.scale, a.q.dim(0)});
    auto table = download_as<int32_t>(dev, a.block_table);
    auto k = download_as<uint16_t>(dev, a.k_pool);
    const int64_t stride = a.block_table.dim(1);
    auto key0 = [&](int h, int64_t row) {
      int64_t slot =
          table[h * stride + row / kKvBlockTokens] * kKvBlockTokens + row % kKvBlockTokens;
      return cpu::f16_to_f32(k[static_cast<size_t>(slot * kD)]);
    };
    std::vector<float> score(static_cast<size_t>(kH * (a.t1 - a.t0)));
    for (int h = 0; h < kH; ++h) {
      for (int64_t j = 0; j < a.t1 - a.t0; ++j) score[h * (a.t1 - a.t0) + j] = key0(h, a.t0 + j);
      for (int64_t i = 0; i < a.q.dim(0); ++i)
        input_rows_ok &=
            key0(h, a.s0 + i) == kv_value(il, h, static_cast<int32_t>(a.s0 + i), 0, 1.0f);
    }
    dev.upload(a.score, score.data());
  }
};

struct Fixture {
  Device& dev = cpu_device();
  Recorder rec{dev};
  KvCache cache{dev, config()};
  std::vector<int32_t> context;
  int64_t n_prefix;
  ReconstructionPrompts prompts{{11, 12}, {21, 22, 23}, {31}};
  FakePass pass{dev, rec, &cache, 0, -1, {}, {}};
  FakeKernel kernel{dev, {}, true};

  Fixture(int64_t prefix, int64_t n_ctx) : n_prefix(prefix) {
    for (int64_t j = 0; j < n_ctx; ++j) context.push_back(static_cast<int32_t>(1000 + j));
    append_tokens(dev, cache, 0, static_cast<int>(prefix + n_ctx));
  }
  Scores run(const CompressorOptions& opts,
             const std::function<void(int64_t, int64_t)>& progress = {}) {
    return score_context(
        rec, cache, context, n_prefix, prompts, opts,
        [this](std::span<const int32_t> t, const ScoreHook& h) { pass(t, h); },
        [this](Recorder& r, int il, const AttnScoreArgs& a) { kernel(r, il, a); }, progress);
  }
};

std::vector<int32_t> cat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<int32_t> ids(int64_t from, int64_t to) {
  std::vector<int32_t> v;
  for (int64_t j = from; j < to; ++j) v.push_back(static_cast<int32_t>(1000 + j));
  return v;
}

TEST(Compressor, ChunksInputsAndScorePlacement) {
  Fixture f(5, 4500);
  std::vector<std::pair<int64_t, int64_t>> progress;
  Scores s = f.run({}, [&](int64_t done, int64_t total) { progress.emplace_back(done, total); });
  const int64_t N = 4505;
  // m = 2000: chunks [0, 2000), [2000, 4000), [4000, 4500); 8 overlap ids from the previous chunk.
  ASSERT_EQ(f.pass.inputs.size(), 3u);
  EXPECT_EQ(f.pass.inputs[0], cat({{11, 12}, {31}, ids(0, 2000)}));
  EXPECT_EQ(f.pass.inputs[1], cat({{21, 22, 23}, ids(1992, 2000), {31}, ids(2000, 4000)}));
  EXPECT_EQ(f.pass.inputs[2], cat({{21, 22, 23}, ids(3992, 4000), {31}, ids(4000, 4500)}));
  EXPECT_EQ(progress,
            (std::vector<std::pair<int64_t, int64_t>>{{2000, 4500}, {4000, 4500}, {4500, 4500}}));
  ASSERT_EQ(f.kernel.calls.size(), 6u);
  std::vector<int> covered(4500, 0);
  for (size_t c = 0; c < f.kernel.calls.size(); ++c) {
    const KernelCall& k = f.kernel.calls[c];
    const size_t chunk = c / kL;
    EXPECT_EQ(k.il, static_cast<int>(c % kL));
    EXPECT_EQ(k.t0, 5 + 2000 * static_cast<int>(chunk));
    EXPECT_EQ(k.t1, std::min(5 + 2000 * static_cast<int>(chunk + 1), 4505));
    EXPECT_EQ(k.s0, N) << "reconstruction rows follow the N prefilled rows";
    EXPECT_EQ(k.n_sink, 5) << "original sinks = the system prefix";
    EXPECT_EQ(k.n_q, static_cast<int64_t>(f.pass.inputs[chunk].size()));
    EXPECT_FLOAT_EQ(k.scale, 1.0f / std::sqrt(static_cast<float>(kD)));
    if (k.il == 0)
      for (int t = k.t0; t < k.t1; ++t) covered[t - 5]++;
  }
  EXPECT_EQ(std::count(covered.begin(), covered.end(), 1), 4500)
      << "each position scored exactly once";
  EXPECT_TRUE(f.kernel.input_rows_ok) << "input rows must sit at positions N..";
  ASSERT_EQ(s.n_ctx, 4500);
  for (int il = 0; il < kL; ++il)
    for (int ih = 0; ih < kH; ++ih)
      for (int64_t j = 0; j < 4500; ++j)
        ASSERT_EQ(s.at(il, ih, j), kv_value(il, ih, static_cast<int32_t>(5 + j), 0, 1.0f))
            << "layer " << il << " head " << ih << " position " << j;
  // The reconstruction rows are gone again: the cache holds exactly the prefilled rows.
  for (int il = 0; il < kL; ++il)
    for (int ih = 0; ih < kH; ++ih) {
      ASSERT_EQ(f.cache.rows(il, ih), N);
      EXPECT_EQ(f.cache.positions(il, ih).back(), N - 1);
    }
}

TEST(Compressor, SinkRulesOriginalAndKvpress) {
  struct Case {
    int64_t n_prefix;
    SinkPolicy sinks;
    std::vector<int> want;
  };
  for (const Case& c :
       {Case{2, SinkPolicy::kOriginal, {2, 2, 2}}, Case{2, SinkPolicy::kKvpress, {2, 4, 4}},
        Case{0, SinkPolicy::kKvpress, {0, 3, 4}}, Case{9, SinkPolicy::kKvpress, {4, 4, 4}},
        Case{9, SinkPolicy::kOriginal, {9, 9, 9}}}) {
    SCOPED_TRACE(::testing::Message()
                 << "n_prefix " << c.n_prefix << " kvpress " << (c.sinks == SinkPolicy::kKvpress));
    Fixture f(c.n_prefix, 8);
    CompressorOptions o;
    o.chunk = 3;
    o.sinks = c.sinks;
    f.run(o);
    ASSERT_EQ(f.kernel.calls.size(), 6u);
    for (size_t i = 0; i < 6; ++i)
      EXPECT_EQ(f.kernel.calls[i].n_sink, c.want[i / kL]) << "chunk " << i / kL;
    // Overlap is cut at the context start: chunk 2 quotes ids 0..2, chunk 3 ids 0..5.
    EXPECT_EQ(f.pass.inputs[1], cat({{21, 22, 23}, ids(0, 3), {31}, ids(3, 6)}));
    EXPECT_EQ(f.pass.inputs[2], cat({{21, 22, 23}, ids(0, 6), {31}, ids(6, 8)}));
  }
}

TEST(Compressor, RefusesToScoreWithoutThePrefilledCache) {
  {  // The pass runs over a fresh cache instead of the prefilled one.
    Fixture f(3, 20);
    KvCache other(f.dev, config());
    f.pass.target = &other;
    EXPECT_THROW(f.run({}), Error);
    EXPECT_EQ(f.cache.rows(1, 1), 23);
  }
  {  // The pass appends to the right cache, but at positions N+1.. instead of N...
    Fixture f(3, 20);
    f.pass.pos_shift = 1;
    EXPECT_THROW(f.run({}), Error);
    EXPECT_EQ(f.cache.rows(0, 0), 23) << "appended rows removed after the failure";
    EXPECT_EQ(f.cache.positions(0, 0).back(), 22);
  }
  {  // The pass skips the score hook of a layer.
    Fixture f(3, 20);
    f.pass.skip_layer = 1;
    EXPECT_THROW(f.run({}), Error);
    EXPECT_EQ(f.cache.rows(1, 0), 23);
  }
  {  // Control: the same fixture with a correct pass scores fine.
    Fixture f(3, 20);
    EXPECT_NO_THROW(f.run({}));
  }
}

TEST(Compressor, BadOptionsAreInputErrors) {
  Fixture f(1, 5);
  CompressorOptions o;
  o.chunk = 0;
  EXPECT_THROW(f.run(o), InputError);
  o.chunk = 4;
  o.overlap = -1;
  EXPECT_THROW(f.run(o), InputError);
  EXPECT_TRUE(f.pass.inputs.empty());
}

TEST(Compressor, PromptTextPerVariant) {
  ReconstructionPromptText orig = reconstruction_prompt_text(SinkPolicy::kOriginal);
  ReconstructionPromptText kvp = reconstruction_prompt_text(SinkPolicy::kKvpress);
  EXPECT_EQ(orig.first, "\n\nRepeat the previous context exactly.");
  EXPECT_EQ(kvp.first, orig.first);
  EXPECT_EQ(orig.next_prefix,
            "\n\nRepeat the part of the previous context exactly, starting with ");
  EXPECT_EQ(kvp.next_prefix, "\n\nRepeat the part of the previous context exactly, starting with");
}

}  // namespace
}  // namespace kvz::test
