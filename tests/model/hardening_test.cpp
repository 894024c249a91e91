// Hostile model inputs (tests/model/): every bad file, path or value is a typed kvz::Error naming
// the cause, never an abort, a crash, a hang or a silently wrong model. Crafted GGUF files come
// from tests/model/tiny_gguf.h, config.json / tokenizer.json edits from tests/data/hf/llama3,
// llama2.c headers are written here.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/session.h"
#include "tests/common/fs_fault.h"
#include "tests/common/test_device.h"
#include "tests/kvzip/cache_edit.h"
#include "tests/model/test_data.h"
#include "tests/model/tiny_gguf.h"

namespace kvz::test {
namespace {

namespace fs = std::filesystem;

const std::vector<int32_t> kTokens = {0, 1, 5, 2, 3};

class ModelHardening : public ::testing::Test {
 protected:
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  std::string gguf(const TinyGguf& o) { return write("m.gguf", tiny_gguf(o)); }
  std::string dir_ = make_scratch_dir("modelhard");
};

template <class E>
::testing::AssertionResult throws(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const E& e) {
    if (std::string(e.what()).find(needle) == std::string::npos)
      return ::testing::AssertionFailure() << "message without '" << needle << "': " << e.what();
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "other exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

TEST_F(ModelHardening, TinyGgufLoads) {
  auto m = Model::load(cpu_device(), gguf({}));
  EXPECT_EQ(m->config().n_layers, 2);
  EXPECT_EQ(m->config().max_context, 128);
}

TEST_F(ModelHardening, BlockCountBelowTheLayersPresent) {
  TinyGguf o;
  o.block_count = 1;  // two layers stored
  EXPECT_TRUE(throws<FormatError>([&] { Model::load(cpu_device(), gguf(o)); }, "blk.1."));
}

TEST_F(ModelHardening, BlockCountAboveTheLayersPresent) {
  TinyGguf o;
  o.block_count = 3;
  EXPECT_TRUE(throws<FormatError>([&] { Model::load(cpu_device(), gguf(o)); }, "missing tensor"));
}

// Every tensor is checked before the first upload: a file whose last layer is missing is
// refused before any weight reaches the device (the progress callback counts uploads).
TEST_F(ModelHardening, MissingLastLayerIsRefusedBeforeAnyUpload) {
  TinyGguf o;
  o.block_count = 3;
  size_t uploads = 0;
  EXPECT_THROW(Model::load(cpu_device(), gguf(o), [&](size_t, size_t) { ++uploads; }), FormatError);
  EXPECT_EQ(uploads, 0u);
  EXPECT_NO_THROW(Model::load(cpu_device(), gguf({}), [&](size_t, size_t) { ++uploads; }));
  EXPECT_GT(uploads, 0u);
}

TEST_F(ModelHardening, ContextLengthOutOfBounds) {
  for (uint32_t ctx : {0u, 0xFFFFFFFFu, 0x7FFFFFFFu}) {
    TinyGguf o;
    o.context_length = ctx;
    EXPECT_TRUE(throws<FormatError>([&] { Model::load(cpu_device(), gguf(o)); }, "context length"))
        << ctx;
  }
}

TEST_F(ModelHardening, RopeDimensionCountHuge) {
  for (uint32_t dims : {0xFFFFFFFEu, 3u, 10u}) {
    TinyGguf o;
    o.rope_dims = dims;
    EXPECT_TRUE(throws<FormatError>([&] { Model::load(cpu_device(), gguf(o)); }, "rope dims"))
        << dims;
  }
}

TEST_F(ModelHardening, RopeFreqBaseNanZeroNegative) {
  for (float base : {std::numeric_limits<float>::quiet_NaN(), 0.0f, -1.0f,
                     std::numeric_limits<float>::infinity()}) {
    TinyGguf o;
    o.rope_freq_base = base;
    EXPECT_TRUE(throws<FormatError>([&] { Model::load(cpu_device(), gguf(o)); }, "RoPE base"))
        << base;
  }
}

TEST_F(ModelHardening, NormEpsilonNegativeOrNan) {
  for (float eps : {-1e-5f, 0.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f}) {
    TinyGguf o;
    o.norm_eps = eps;
    EXPECT_TRUE(throws<FormatError>([&] { Model::load(cpu_device(), gguf(o)); }, "norm epsilon"))
        << eps;
  }
}

TEST_F(ModelHardening, NanNormWeights) {
  TinyGguf o;
  o.norm_value = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(
      throws<FormatError>([&] { Model::load(cpu_device(), gguf(o)); }, "blk.0.attn_norm.weight"));
}

TEST_F(ModelHardening, NamedPipeDoesNotHang) {
  for (const char* name : {"p.gguf", "p.bin"}) {
    const std::string p = dir_ + "/" + name;
    ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0);
    EXPECT_TRUE(throws<InputError>([&] { Model::load(cpu_device(), p); }, "regular")) << name;
  }
}

TEST_F(ModelHardening, PathTooLongOrSymlinkLoopIsAnInputError) {
  const std::string long_name = dir_ + "/" + std::string(300, 'x') + ".gguf";
  EXPECT_TRUE(throws<InputError>([&] { Model::load(cpu_device(), long_name); }, "model"));
  const std::string a = dir_ + "/a.gguf", b = dir_ + "/b.gguf";
  ASSERT_EQ(::symlink(a.c_str(), b.c_str()), 0);
  ASSERT_EQ(::symlink(b.c_str(), a.c_str()), 0);
  EXPECT_TRUE(throws<InputError>([&] { Model::load(cpu_device(), a); }, "model"));
}

// llama2.c: the header of the issue multiplies to more than 2^64 bytes; it must be refused before
// anything is read past the file.
TEST_F(ModelHardening, Llama2cHeaderOverflow) {
  fs::copy_file(data_path("stories260K/tok512.bin"), dir_ + "/tok512.bin");
  auto header = [&](std::vector<int32_t> h, size_t extra_floats) {
    std::vector<uint8_t> b(28 + extra_floats * 4, 0);
    std::memcpy(b.data(), h.data(), 28);
    return write("m.bin", b);
  };
  const int32_t vocab = 1 << 30;
  EXPECT_THROW(Model::load(cpu_device(), header({8192, 338602, 32, 32, 32, vocab, 2048}, 64)),
               FormatError);
  // Within the size bounds but far more than the file holds.
  EXPECT_TRUE(throws<FormatError>(
      [&] {
        Model::load(cpu_device(), header({4096, 14336, 32, 32, 8, 32000, 4096}, 64));
      },
      "truncated"));
  EXPECT_THROW(Model::load(cpu_device(), header({64, 128, 2, 8, 8, INT32_MIN, 256}, 64)),
               FormatError);
  EXPECT_THROW(Model::load(cpu_device(), header({66, 128, 2, 8, 8, 512, 256}, 64)), FormatError);
}

class HfHardening : public ModelHardening {
 protected:
  void SetUp() override {
    fs::copy(data_path("hf/llama3"), dir_ + "/hf", fs::copy_options::recursive);
  }
  void edit(const char* file, const std::function<void(nlohmann::json&)>& f) {
    const std::string p = dir_ + "/hf/" + file;
    nlohmann::json j = load_json(p);
    f(j);
    std::ofstream(p, std::ios::trunc) << j.dump(1);
  }
  void load() { Model::load(cpu_device(), dir_ + "/hf"); }
};

TEST_F(HfHardening, UneditedLoads) { EXPECT_NO_THROW(load()); }

TEST_F(HfHardening, RopeThetaNotANumber) {
  edit("config.json", [](nlohmann::json& j) { j["rope_parameters"]["rope_theta"] = "abc"; });
  EXPECT_TRUE(throws<FormatError>([&] { load(); }, "config.json"));
}

TEST_F(HfHardening, RopeTypeNotAString) {
  edit("config.json", [](nlohmann::json& j) { j["rope_parameters"]["rope_type"] = 7; });
  EXPECT_TRUE(throws<FormatError>([&] { load(); }, "config.json"));
}

TEST_F(HfHardening, LayerCountAbove32Bits) {
  edit("config.json", [](nlohmann::json& j) { j["num_hidden_layers"] = (int64_t{1} << 33) + 2; });
  EXPECT_TRUE(throws<FormatError>([&] { load(); }, "num_hidden_layers"));
}

TEST_F(HfHardening, RopeThetaOverflowsFloat) {
  edit("config.json", [](nlohmann::json& j) { j["rope_parameters"]["rope_theta"] = 1e300; });
  EXPECT_TRUE(throws<FormatError>([&] { load(); }, "RoPE base"));
}

TEST_F(HfHardening, AddedTokensOfTheWrongTypes) {
  edit("tokenizer.json", [](nlohmann::json& j) { j["added_tokens"][0]["id"] = "zero"; });
  EXPECT_TRUE(throws<FormatError>([&] { load(); }, "tokenizer.json"));
  edit("tokenizer.json", [](nlohmann::json& j) { j["added_tokens"] = nlohmann::json{{"a", 1}}; });
  EXPECT_TRUE(throws<FormatError>([&] { load(); }, "tokenizer.json"));
  edit("tokenizer.json", [](nlohmann::json& j) { j["added_tokens"] = {1, 2}; });
  EXPECT_TRUE(throws<FormatError>([&] { load(); }, "tokenizer.json"));
}

TEST_F(HfHardening, ConfigAsANamedPipe) {
  fs::remove(dir_ + "/hf/config.json");
  ASSERT_EQ(::mkfifo((dir_ + "/hf/config.json").c_str(), 0600), 0);
  EXPECT_TRUE(throws<InputError>([&] { load(); }, "regular"));
}

TEST(SyntheticHardening, UnknownWeightTypeIsAnInputError) {
  EXPECT_THROW(make_synthetic_model(cpu_device(), "llama3.1-8b", dtype_from_name("nope")),
               InputError);
}

// The identity covers every weight byte: one changed byte deep inside a tensor (past the first 64
// bytes the old identity sampled) gives another identity, so a cache of one is refused by the
// other.
TEST_F(ModelHardening, IdentityCoversEveryWeightByte) {
  const std::vector<uint8_t> a = tiny_gguf({});
  std::vector<uint8_t> b = a;
  b[b.size() - 100] ^= 0x01;  // inside the last tensor's data
  const std::string pa = write("a.gguf", a), pb = write("b.gguf", b);
  auto ma = Model::load(cpu_device(), pa), mb = Model::load(cpu_device(), pb);
  EXPECT_NE(ma->identity(), mb->identity());
  EXPECT_EQ(ma->identity(), Model::load(cpu_device(), pa)->identity());

  Session s(*ma);
  s.prefill_tokens({}, kTokens);
  const std::string cache = dir_ + "/c.kvz";
  s.save_cache(cache);
  Session t(*mb);
  EXPECT_TRUE(throws<FormatError>([&] { t.load_cache(cache); }, "was made by model"));
  Session u(*ma);
  EXPECT_NO_THROW(u.load_cache(cache));
}

// The weights hash is remembered in a sidecar keyed by (path, size, mtime): the second load
// reads it (a planted hash shows through), a touched file is hashed again, and an unwritable cache
// folder never fails the load.
TEST_F(ModelHardening, IdentityIsRememberedBesideTheModel) {
  const std::string p = gguf({}), cache = dir_ + "/idcache";
  const std::string fresh = Model::load(cpu_device(), p, {}, cache)->identity();
  EXPECT_EQ(Model::load(cpu_device(), p)->identity(), fresh);
  std::vector<std::string> sidecars = list_dir(cache);
  ASSERT_EQ(sidecars.size(), 1u);
  const std::string sc = cache + "/" + sidecars[0];
  nlohmann::json j = load_json(sc);
  j["xxh3_128"] = std::string(32, 'f');
  std::ofstream(sc, std::ios::trunc) << j.dump();
  EXPECT_NE(Model::load(cpu_device(), p, {}, cache)->identity(), fresh) << "sidecar not read";
  // A changed mtime makes the sidecar stale.
  struct timespec times[2] = {{0, UTIME_OMIT}, {12345, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
  EXPECT_EQ(Model::load(cpu_device(), p, {}, cache)->identity(), fresh);
  // Unusable cache folders: a file in the way, a read-only folder.
  std::ofstream(dir_ + "/notadir") << "x";
  EXPECT_EQ(Model::load(cpu_device(), p, {}, dir_ + "/notadir")->identity(), fresh);
  ReadOnlyDir ro;
  if (ro.seal()) {
    EXPECT_EQ(Model::load(cpu_device(), p, {}, ro.dir())->identity(), fresh);
  }
}

// Cache files whose tokens the model cannot have produced, or whose next position is past the
// model's context, are refused at load.
TEST_F(ModelHardening, CacheFileOutOfVocabularyOrPastTheContext) {
  auto m = Model::load(cpu_device(), gguf({}));
  Session s(*m);
  s.prefill_tokens({}, kTokens);
  const std::string cache = dir_ + "/c.kvz";
  s.save_cache(cache);
  edit_cache_file(cache, [](nlohmann::json& h) { h["tokens"][0] = 8; });
  Session t(*m);
  EXPECT_TRUE(throws<FormatError>([&] { t.load_cache(cache); }, "vocabulary"));
  s.save_cache(cache);
  edit_cache_file(cache, [](nlohmann::json& h) { h["next_pos"] = 100000; });
  EXPECT_TRUE(throws<FormatError>([&] { t.load_cache(cache); }, "context"));
}

}  // namespace
}  // namespace kvz::test
