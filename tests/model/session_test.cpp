// KVzip session invariants end to end on a real checkpoint (stories260K, GQA 8/4), on the CPU
// backend and on Vulkan: ratio 1.0 changes nothing, chunked prefill changes nothing, attention over
// the compacted ragged cache equals attention over the full cache with the evicted pairs masked,
// cache files round-trip bit-exactly and corrupt files are refused (tests/model).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "kvzip/cache_file.h"
#include "kvzip/pruner.h"
#include "model/forward.h"
#include "model/session.h"
#include "runtime/ops/paged_attention.h"
#include "tests/common/test_device.h"
#include "tests/model/test_data.h"

namespace kvz::test {
namespace {

constexpr const char* kContext =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her red ball. One day, she saw a big dog under a tree. The dog was sad because it was "
    "lost. "
    "Lily said, \"Do not be sad, dog. I will help you find your home.\" They walked and walked "
    "until "
    "they found a small house with a blue door. A kind old man opened the door and smiled. \"Thank "
    "you, Lily!\" he said. \"My dog Max was lost all day.\" Lily was happy. She went home and told "
    "her "
    "mom about the dog. Her mom gave her a big hug and a cookie.";

std::string temp_path(const char* name) {
  return (std::filesystem::temp_directory_path() / fmt::format("kvz_{}_{}", name, ::getpid()))
      .string();
}

class SessionTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    dev = backend_device(GetParam());
    if (!dev) GTEST_SKIP() << "no Vulkan device";
    model = Model::load(*dev, data_path("stories260K/stories260K.bin"));
  }
  SessionOptions options(int prefill_chunk = 64) const {
    SessionOptions o;
    o.prefill_chunk = prefill_chunk;
    o.score_chunk = 48;  // several reconstruction chunks over the ~150-token context
    o.instruction = "";
    return o;
  }
  GenerateOptions greedy() const {
    GenerateOptions g;
    g.max_new_tokens = 24;
    g.ignore_eos = true;
    return g;
  }
  Device* dev = nullptr;
  std::unique_ptr<Model> model;
};

TEST_P(SessionTest, ChunkedPrefillGivesTheSameAnswer) {
  Session a(*model, options(512)), b(*model, options(7));
  a.prefill(kContext);
  b.prefill(kContext);
  EXPECT_EQ(a.generate("Who was lost?", greedy()).tokens,
            b.generate("Who was lost?", greedy()).tokens);
}

TEST_P(SessionTest, RatioOneReproducesTheFullCache) {
  Session s(*model, options());
  s.prefill(kContext);
  const auto full = s.generate("Who was lost?", greedy());
  const size_t bytes = s.cache().bytes_in_use();
  const Scores& sc = s.score();
  ASSERT_EQ(sc.n_ctx, s.n_context());
  PruneResult r = s.prune(1.0);
  EXPECT_DOUBLE_EQ(r.kept_fraction, 1.0);
  EXPECT_EQ(r.bytes_after, bytes);
  EXPECT_EQ(s.generate("Who was lost?", greedy()).tokens, full.tokens);
}

TEST_P(SessionTest, PruneKeepsTheBudgetAndRetainRestores) {
  Session s(*model, options());
  s.set_retain(true);
  s.prefill(kContext);
  const auto full = s.generate("Who was lost?", greedy());
  s.score();
  const int64_t rows_before = s.cache().total_rows();
  PruneResult r = s.prune(0.3);
  const ModelConfig& c = model->config();
  const int64_t pairs = int64_t{c.n_layers} * c.n_kv_heads * s.n_context();
  const int64_t kept = s.cache().total_rows() - int64_t{c.n_layers} * c.n_kv_heads * s.n_prefix();
  EXPECT_LE(kept, static_cast<int64_t>(std::ceil(0.3 * static_cast<double>(pairs))));
  EXPECT_GE(kept, static_cast<int64_t>(0.3 * static_cast<double>(pairs)) - 1);
  EXPECT_LT(s.cache().total_rows(), rows_before);
  EXPECT_LT(r.bytes_after, r.bytes_before);
  EXPECT_FALSE(s.generate("Who was lost?", greedy()).tokens.empty());
  s.restore_full();
  EXPECT_EQ(s.generate("Who was lost?", greedy()).tokens, full.tokens);
}

// PruneLevel::kAdaKv leaves exactly the rows prune_adakv selects from the session's scores.
TEST_P(SessionTest, AdaKvLevelKeepsTheRowsPruneAdakvSelects) {
  Session s(*model, options());
  s.prefill(kContext);
  s.score();
  const KeepSet want = prune_adakv(s.scores(), 0.3, s.n_prefix(), s.n_prefix() + s.n_context(),
                                   kv_cache_config(model->config()).prunable);
  const PruneResult r = s.prune(0.3, PruneLevel::kAdaKv);
  EXPECT_DOUBLE_EQ(r.kept_fraction, want.kept_fraction);
  bool uneven = false;
  for (int il = 0; il < model->config().n_layers; ++il)
    for (int ih = 0; ih < model->config().n_kv_heads; ++ih) {
      const std::vector<int32_t>& rows = want.rows[il][ih];  // rows of the full cache = positions
      ASSERT_EQ(s.cache().positions(il, ih), rows) << il << "/" << ih;
      uneven |= rows.size() != want.rows[il][0].size();
    }
  EXPECT_TRUE(uneven);  // AdaKV moved budget between heads, unlike the uniform split
}

TEST_P(SessionTest, UpdateCacheKeepsTheTurnOtherwiseDropsIt) {
  Session s(*model, options());
  s.prefill(kContext);
  const int64_t rows = s.cache().total_rows();
  s.generate("Who was lost?", greedy());
  EXPECT_EQ(s.cache().total_rows(), rows);
  GenerateOptions keep = greedy();
  keep.update_cache = true;
  s.generate("Who was lost?", keep);
  EXPECT_GT(s.cache().total_rows(), rows);
}

// Decoding ahead (step i + 1 recorded before token i is read back) changes nothing: the same
// tokens, greedy and sampled, and after a stop token the same cache as one step at a time.
TEST_P(SessionTest, DecodeAheadGivesTheSameTokensAndCache) {
  Session a(*model, options()), b(*model, options());
  a.prefill(kContext);
  b.prefill(kContext);
  GenerateOptions on = greedy(), off = greedy();
  off.decode_ahead = false;
  EXPECT_EQ(a.generate("Who was lost?", on).tokens, b.generate("Who was lost?", off).tokens);
  on.temperature = off.temperature = 0.8f;
  on.seed = off.seed = 7;
  EXPECT_EQ(a.generate("Who was lost?", on).tokens, b.generate("Who was lost?", off).tokens);
  // Up to a stop token, kept in the cache: the step fed with the stop token is undone. The stop
  // is the first token of the greedy answer from the 6th on that did not occur before.
  on = greedy(), off = greedy();
  off.decode_ahead = false;
  const std::vector<int32_t> full = b.generate("Who was lost?", off).tokens;
  size_t at = 5;
  while (at < full.size() &&
         std::find(full.begin(), full.begin() + at, full[at]) != full.begin() + at)
    ++at;
  ASSERT_LT(at, full.size());
  on.stop_tokens = off.stop_tokens = {full[at]};
  on.update_cache = off.update_cache = true;
  const GenerateResult ra = a.generate("Who was lost?", on), rb = b.generate("Who was lost?", off);
  EXPECT_EQ(ra.tokens, std::vector<int32_t>(full.begin(), full.begin() + at));
  EXPECT_EQ(rb.tokens, ra.tokens);
  EXPECT_EQ(a.cache().total_rows(), b.cache().total_rows());
  EXPECT_EQ(a.cache().positions(0, 0), b.cache().positions(0, 0));
  EXPECT_EQ(a.generate("Where?", greedy()).tokens, b.generate("Where?", greedy()).tokens);
}

// A copy of `full` whose evicted rows are moved to a position no query reaches (pos_j <= q_pos
// fails for every query): the full cache with those pairs masked.
std::unique_ptr<KvCache> masked_copy(Device& dev, Recorder& rec, const KvCache& full,
                                     const KeepSet& keep) {
  auto masked = full.clone(rec);
  const KvCacheConfig& cfg = full.config();
  for (int il = 0; il < cfg.n_layers; ++il) {
    KvCache::LayerView v = masked->layer(il);
    std::vector<int32_t> pos = download_as<int32_t>(dev, v.pos_pool);
    std::vector<int32_t> table = download_as<int32_t>(dev, v.block_table);
    const int64_t stride = v.block_table.dim(1);
    for (int ih = 0; ih < cfg.n_kv_heads; ++ih) {
      std::vector<bool> kept(static_cast<size_t>(full.rows(il, ih)), false);
      for (int32_t r : keep.rows[il][ih]) kept[static_cast<size_t>(r)] = true;
      for (size_t r = 0; r < kept.size(); ++r)
        if (!kept[r])
          pos[static_cast<size_t>(table[static_cast<size_t>(ih * stride) + r / kKvBlockTokens]) *
                  kKvBlockTokens +
              r % kKvBlockTokens] = INT32_MAX;
    }
    dev.upload(v.pos_pool, pos.data());
  }
  return masked;
}

// The repetition penalty's history lives on the device (each pick copied in): decoding ahead and
// one step at a time give the same tokens; a prohibitive penalty over the whole answer leaves no
// token repeated, which plain greedy decoding of this model does repeat.
TEST_P(SessionTest, RepeatPenaltyAheadAndStepwiseAgree) {
  Session a(*model, options()), b(*model, options());
  a.prefill(kContext);
  b.prefill(kContext);
  GenerateOptions plain = greedy();
  const std::vector<int32_t> looped = a.generate("Who was lost?", plain).tokens;
  ASSERT_NE(std::set<int32_t>(looped.begin(), looped.end()).size(), looped.size());
  GenerateOptions on = greedy(), off = greedy();
  on.repeat_penalty = off.repeat_penalty = 1e6f;
  on.repeat_last_n = off.repeat_last_n = 256;
  off.decode_ahead = false;
  const std::vector<int32_t> got = a.generate("Who was lost?", on).tokens;
  EXPECT_EQ(got, b.generate("Who was lost?", off).tokens);
  EXPECT_EQ(std::set<int32_t>(got.begin(), got.end()).size(), got.size());
  on.repeat_penalty = off.repeat_penalty = 1.3f;  // sampled, with min-p
  on.temperature = off.temperature = 0.9f;
  on.min_p = off.min_p = 0.05f;
  on.seed = off.seed = 3;
  EXPECT_EQ(a.generate("Who was lost?", on).tokens, b.generate("Who was lost?", off).tokens);
  on.repeat_penalty = 0;
  EXPECT_THROW(a.generate("Who was lost?", on), InputError);
}

TEST_P(SessionTest, CompactedCacheAttentionEqualsMaskedFullCache) {
  Session s(*model, options());
  s.prefill(kContext);
  const Scores& sc = s.score();
  const int64_t n_rows = s.n_prefix() + s.n_context();
  KeepSet keep = prune_pair(sc, 0.3, s.n_prefix(), n_rows);
  Recorder rec(*dev);
  auto compact = s.cache().clone(rec);
  compact->compact(rec, keep);
  auto masked = masked_copy(*dev, rec, s.cache(), keep);

  const ModelConfig& c = model->config();
  const int64_t n_q = 3, H = c.n_heads, hd = c.head_dim;
  Rng rng(5);
  std::vector<Buffer> bufs;
  Tensor q =
      upload_f32(*dev, bufs, {n_q, H, hd}, rng.uniform_vec(static_cast<size_t>(n_q * H * hd)));
  std::vector<int32_t> qpos = {static_cast<int32_t>(n_rows), static_cast<int32_t>(n_rows) + 1,
                               static_cast<int32_t>(n_rows / 2)};
  Tensor q_pos = upload(*dev, bufs, DType::kI32, {n_q}, qpos.data());
  for (int il = 0; il < c.n_layers; ++il) {
    std::vector<float> outs[2];
    int i = 0;
    for (const KvCache* cache : {compact.get(), masked.get()}) {
      KvCache::LayerView v = cache->layer(il);
      Tensor out = alloc_tensor(*dev, bufs, DType::kF32, {n_q, H, hd});
      PagedAttentionArgs pa;
      pa.q = q, pa.q_pos = q_pos, pa.k_pool = v.k_pool, pa.v_pool = v.v_pool,
      pa.pos_pool = v.pos_pool;
      pa.block_table = v.block_table, pa.lens = v.lens, pa.out = out;
      pa.scale = c.attn_scale;
      paged_attention(rec, pa);
      rec.finish();
      outs[i++] = download_f32(*dev, out);
    }
    EXPECT_TRUE(all_close(outs[0], outs[1], 1e-5, 1e-4)) << "layer " << il;
  }
}

TEST_P(SessionTest, CacheFileRoundTripsAndRefusesCorruption) {
  const std::string path = temp_path("cache");
  Session s(*model, options());
  s.prefill(kContext);
  s.score();
  s.prune(0.3);
  const auto want = s.generate("Who was lost?", greedy());
  s.save_cache(path);
  ASSERT_FALSE(std::filesystem::exists(path + ".tmp"));

  Session t(*model, options());
  t.load_cache(path);
  EXPECT_EQ(t.n_prefix(), s.n_prefix());
  EXPECT_EQ(t.n_context(), s.n_context());
  for (int il = 0; il < model->config().n_layers; ++il) {
    auto a = s.cache().read_layer(il), b = t.cache().read_layer(il);
    ASSERT_EQ(a.size(), b.size());
    for (size_t ih = 0; ih < a.size(); ++ih) {
      EXPECT_EQ(a[ih].pos, b[ih].pos);
      EXPECT_EQ(a[ih].k, b[ih].k);
      EXPECT_EQ(a[ih].v, b[ih].v);
    }
  }
  EXPECT_EQ(t.scores().data, s.scores().data);
  EXPECT_EQ(t.generate("Who was lost?", greedy()).tokens, want.tokens);

  // One flipped byte in the middle of the K/V payload: refused by the checksum.
  std::vector<uint8_t> bytes = read_bytes(path);
  bytes[bytes.size() / 2] ^= 0x40;
  const std::string bad = temp_path("bad");
  std::ofstream(bad, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  Session u(*model, options());
  EXPECT_THROW(u.load_cache(bad), FormatError);
  // Truncated.
  std::filesystem::resize_file(bad, bytes.size() / 3);
  EXPECT_THROW(u.load_cache(bad), FormatError);
  std::remove(path.c_str());
  std::remove(bad.c_str());
}

TEST_P(SessionTest, BadInputGivesTypedErrors) {
  Session s(*model, options());
  EXPECT_THROW(s.prune(0.3), Error);  // before score
  s.prefill(kContext);
  s.score();
  EXPECT_THROW(s.prune(0.0), InputError);
  EXPECT_THROW(s.prune(1.5), InputError);
  std::string huge;
  for (int i = 0; i < 200; ++i) huge += kContext;
  EXPECT_THROW(s.prefill(huge), InputError);
  EXPECT_THROW(s.load_cache(temp_path("missing")), Error);
}

INSTANTIATE_TEST_SUITE_P(Backends, SessionTest, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "Vulkan" : "Cpu"; });

}  // namespace
}  // namespace kvz::test
