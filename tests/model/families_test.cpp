// The model-family registry (model/families): every registered family loads a committed fixture
// of each format it names (GGUF: tests/data/parity, Hugging Face: tests/data/hf, llama2.c:
// stories260K) as that family, with the family's quirks in the ModelConfig; an unknown
// architecture or model_type is a FormatError naming it (tests/model).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/families/family.h"
#include "model/model.h"
#include "tests/common/fs_fault.h"
#include "tests/common/test_device.h"
#include "tests/model/test_data.h"
#include "tests/model/tiny_gguf.h"

namespace kvz::test {
namespace {

namespace fs = std::filesystem;

enum class Format { kGguf, kHf, kLlama2c };

struct Fixture {
  Format format;
  const char* path;    // under tests/data
  const char* record;  // the generator's record of the model (its config.arch), under tests/data
  const char* family;  // for a fixture without a record
};

// A new family adds its fixtures here (the first test fails until it does).
constexpr Fixture kFixtures[] = {
    {Format::kGguf, "parity/llama3_tied.gguf", "parity/llama3_tied.json", nullptr},
    {Format::kGguf, "parity/llama_untied.gguf", "parity/llama_untied.json", nullptr},
    {Format::kGguf, "parity/qwen2.gguf", "parity/qwen2.json", nullptr},
    {Format::kGguf, "parity/qwen3.gguf", "parity/qwen3.json", nullptr},
    {Format::kGguf, "parity/gemma3.gguf", "parity/gemma3.json", nullptr},
    {Format::kHf, "hf/llama3", "hf/llama3.json", nullptr},
    {Format::kHf, "hf/smollm", "hf/smollm.json", nullptr},
    {Format::kHf, "hf/qwen2", "hf/qwen2.json", nullptr},
    {Format::kHf, "hf/qwen3", "hf/qwen3.json", nullptr},
    {Format::kHf, "hf/gemma3", "hf/gemma3.json", nullptr},
    // llama2.c checkpoints hold LLaMA models only.
    {Format::kLlama2c, "stories260K/stories260K.bin", nullptr, "llama"},
};

// The family a fixture was made as: its record's config.arch (written by the script that made
// it, from the transformers config), not the registry's own lookup.
std::string family_of(const Fixture& x) {
  if (!x.record) return x.family;
  return load_json(data_path(x.record))["config"]["arch"].get<std::string>();
}

bool has_fixture(const ModelFamily& f, Format format) {
  for (const Fixture& x : kFixtures)
    if (x.format == format && family_of(x) == f.name) return true;
  return false;
}

TEST(ModelFamilies, EveryFamilyHasAFixturePerFormat) {
  ASSERT_FALSE(model_families().empty());
  for (const ModelFamily* f : model_families()) {
    if (f->gguf_arch) {
      EXPECT_TRUE(has_fixture(*f, Format::kGguf)) << f->name << ": no GGUF fixture";
    }
    if (f->hf_model_type) {
      EXPECT_TRUE(has_fixture(*f, Format::kHf)) << f->name << ": no HF fixture";
    }
  }
}

TEST(ModelFamilies, LookupsFindEachFamily) {
  for (const ModelFamily* f : model_families()) {
    EXPECT_EQ(find_family(f->name), f);
    EXPECT_EQ(&family_for_gguf(f->gguf_arch, "x"), f);
    EXPECT_EQ(&family_for_hf(f->hf_model_type, "x"), f);
  }
  EXPECT_EQ(find_family("mamba"), nullptr);
}

TEST(ModelFamilies, EveryFixtureLoadsAsItsFamily) {
  for (const Fixture& x : kFixtures) {
    SCOPED_TRACE(x.path);
    const ModelFamily* f = find_family(family_of(x));
    ASSERT_NE(f, nullptr) << family_of(x);
    auto m = Model::load(cpu_device(), data_path(x.path));
    const ModelConfig& c = m->config();
    EXPECT_EQ(c.arch_name, f->name);
    EXPECT_EQ(c.qkv_bias, f->qkv_bias);
    EXPECT_EQ(c.qk_norm, f->qk_norm);
    EXPECT_EQ(c.post_norms, f->post_norms);
    EXPECT_EQ(c.act, f->act);
    EXPECT_EQ(c.rope_style, x.format == Format::kHf ? RopeStyle::kNeox : f->gguf_rope_style);
    EXPECT_EQ(c.embedding_scale,
              f->embedding_scale_sqrt_d ? std::sqrt(static_cast<float>(c.d_model)) : 1.0f);
    EXPECT_EQ(static_cast<int>(m->weights().layers.size()), c.n_layers);
    for (const LayerWeights& l : m->weights().layers) {
      EXPECT_EQ(l.bq.defined(), f->qkv_bias);
      EXPECT_EQ(l.q_norm.defined(), f->qk_norm);
      EXPECT_EQ(l.post_ffn_norm.defined(), f->post_norms);
    }
    if (f->sliding_pattern > 0) {
      // Local and global layers both occur, and local layers have a window.
      ASSERT_EQ(static_cast<int>(c.layer_sliding.size()), c.n_layers);
      int local = 0;
      for (int il = 0; il < c.n_layers; ++il) local += c.sliding(il);
      EXPECT_GT(local, 0);
      EXPECT_LT(local, c.n_layers);
      EXPECT_GT(c.sliding_window, 0);
    } else {
      EXPECT_TRUE(c.layer_sliding.empty());
      EXPECT_EQ(c.rope_base_local, c.rope_base);
    }
  }
}

template <class F>
std::string format_error_of(F&& f) {
  try {
    f();
  } catch (const FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("other exception: ") + e.what();
  }
  return "no exception";
}

TEST(ModelFamilies, UnknownGgufArchitectureIsNamed) {
  const std::string dir = make_scratch_dir("families");
  const std::string path = dir + "/m.gguf";
  TinyGguf o;
  o.arch = "mamba";
  const auto bytes = tiny_gguf(o);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  const std::string msg = format_error_of([&] { Model::load(cpu_device(), path); });
  fs::remove_all(dir);
  EXPECT_NE(msg.find("unsupported architecture 'mamba'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.gguf"), std::string::npos) << msg;
  for (const ModelFamily* f : model_families())
    EXPECT_NE(msg.find(f->gguf_arch), std::string::npos) << msg;
}

TEST(ModelFamilies, UnknownHfModelTypeIsNamed) {
  const std::string dir = make_scratch_dir("families");
  fs::copy(data_path("hf/llama3"), dir, fs::copy_options::recursive);
  auto cfg = load_json(dir + "/config.json");
  cfg["model_type"] = "mamba";
  std::ofstream(dir + "/config.json", std::ios::trunc) << cfg.dump();
  const std::string msg = format_error_of([&] { Model::load(cpu_device(), dir); });
  fs::remove_all(dir);
  EXPECT_NE(msg.find("unsupported model_type 'mamba'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
  for (const ModelFamily* f : model_families())
    EXPECT_NE(msg.find(f->hf_model_type), std::string::npos) << msg;
}

}  // namespace
}  // namespace kvz::test
