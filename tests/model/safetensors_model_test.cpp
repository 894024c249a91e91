// Hugging Face safetensors model folders (tests/data/hf, made by tools/make_safetensors_models.py):
// tiny llama (LLaMA 3 rope scaling), qwen2 (biases, sharded), qwen3 (q/k norm, bf16) and gemma3
// (sliding window, (1 + w) norms, bf16) load through Model::load and match transformers' last
// logits, greedy tokens and tokenizer ids; broken folders throw FormatError (tests/model).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "model/forward.h"
#include "runtime/ops/sampling.h"
#include "tests/common/test_device.h"
#include "tests/model/test_data.h"

namespace kvz::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// K/V are cached in f16 (relative rounding 2^-11), everything else is f32.
double logit_tol(const std::vector<float>& ref) {
  double mx = 1.0;
  for (float v : ref) mx = std::max(mx, std::fabs(static_cast<double>(v)));
  return 4e-3 * mx;
}

// Prefills `ids` in one forward, then decodes `steps` greedy tokens; returns the prefill's last
// logits row and the tokens.
std::pair<std::vector<float>, std::vector<int32_t>> run_prompt(Device& dev, const Model& m,
                                                               const std::vector<int32_t>& ids,
                                                               int steps) {
  const int n = static_cast<int>(ids.size());
  Forward fwd(m, n, 1);
  KvCache cache(dev, kv_cache_config(m.config()));
  Recorder rec(dev);
  std::vector<int32_t> pos(ids.size());
  for (int i = 0; i < n; ++i) pos[i] = i;
  fwd.run(rec, ids, pos, cache, 1);
  rec.finish();
  std::vector<float> last(static_cast<size_t>(m.config().n_vocab));
  dev.download(fwd.logits().slice(0, 1), last.data());
  Buffer b = dev.alloc(4);
  Tensor out = b.tensor(DType::kI32, {1});
  std::vector<int32_t> gen;
  for (int32_t p = n; static_cast<int>(gen.size()) < steps; ++p) {
    argmax(rec, {fwd.logits().slice(0, 1), out});
    rec.finish();
    int32_t tok = 0;
    dev.download(out, &tok);
    gen.push_back(tok);
    fwd.run(rec, std::span<const int32_t>(&tok, 1), std::span<const int32_t>(&p, 1), cache, 1);
  }
  rec.finish();
  return {last, gen};
}

// Loads `folder` and checks it against the goldens tests/data/hf/<name>.json.
void expect_matches_golden(Device* dev, const std::string& folder, const std::string& name) {
  const json g = load_json(data_path("hf/" + name + ".json"));
  auto model = Model::load(*dev, folder);
  const ModelConfig& c = model->config();
  ASSERT_EQ(c.n_layers, g["config"]["n_layers"].get<int>());
  ASSERT_EQ(c.n_vocab, g["config"]["vocab"].get<int>());
  const Tokenizer& tok = model->tokenizer();
  EXPECT_EQ(tok.bos_id(), g["bos_id"].is_null() ? -1 : g["bos_id"].get<int32_t>());
  EXPECT_EQ(tok.eos_id(), g["eos_id"].get<int32_t>());
  for (const auto& p : g["prompts"]) {
    const auto text = p["text"].get<std::string>();
    const auto ids = p["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(text, /*add_special=*/true, /*parse_special=*/true), ids)
        << name << ": " << text;
    const auto ref = p["last_logits"].get<std::vector<float>>();
    const double tol = logit_tol(ref);
    const auto want = p["greedy"].get<std::vector<int32_t>>();
    auto [last, gen] = run_prompt(*dev, *model, ids, static_cast<int>(want.size()));
    EXPECT_TRUE(all_close(last, ref, tol)) << name << ": last logits of '" << text << "'";
    for (size_t i = 0; i < gen.size(); ++i) {
      if (gen[i] == want[i]) continue;
      // A flip is legitimate only where the reference's top-2 were within our tolerance.
      EXPECT_LT(p["greedy_top1_margin"][i].get<double>(), tol)
          << name << ": greedy token " << i << " is " << gen[i] << ", want " << want[i];
      break;
    }
  }
  for (const auto& t : g["tokenizer"]) {
    const auto text = t["text"].get<std::string>();
    EXPECT_EQ(tok.encode(text, true, true), t["ids"].get<std::vector<int32_t>>())
        << name << ": " << text;
    if (text.find('<') == std::string::npos) {  // no special tokens to skip
      EXPECT_EQ(tok.decode(t["ids"].get<std::vector<int32_t>>(), /*skip_special=*/true), text)
          << name;
    }
  }
}

class HfSafetensors : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(HfSafetensors, LogitsGreedyAndTokenizerMatchTransformers) {
  const auto& [name, vulkan] = GetParam();
  Device* dev = vulkan ? vk_device() : &cpu_device();
  if (!dev) GTEST_SKIP() << "no Vulkan device";
  expect_matches_golden(dev, data_path("hf/" + name), name);
}

INSTANTIATE_TEST_SUITE_P(Families, HfSafetensors,
                         ::testing::Combine(::testing::Values("llama3", "qwen2", "qwen3", "gemma3",
                                                              "smollm"),
                                            ::testing::Bool()),
                         [](const auto& p) {
                           return std::get<0>(p.param) +
                                  (std::get<1>(p.param) ? "_vulkan" : "_cpu");
                         });

// A copy of a fixture folder in a temporary directory, for breaking it.
class BrokenHfFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           (std::string("kvz_hf_broken_") +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::copy(data_path("hf/llama3"), dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void copy_fixture(const std::string& name) {
    fs::remove_all(dir_);
    fs::copy(data_path("hf/" + name), dir_, fs::copy_options::recursive);
  }
  void edit_config(const std::function<void(json&)>& f) {
    json j = load_json((dir_ / "config.json").string());
    f(j);
    std::ofstream((dir_ / "config.json").string()) << j.dump(1);
  }
  // Loading must throw FormatError whose message contains every one of `parts`.
  void expect_format_error(std::initializer_list<std::string> parts) {
    try {
      Model::load(cpu_device(), dir_.string());
      ADD_FAILURE() << "no exception";
    } catch (const FormatError& e) {
      for (const auto& s : parts)
        EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
    }
  }
  fs::path dir_;
};

// Configs written before transformers 5 spell rope settings as rope_theta / rope_scaling
// (+ rope_local_base_freq and sliding_window_pattern for Gemma 3).
TEST_F(BrokenHfFolder, LegacyRopeKeysLoadTheSameModel) {
  edit_config([](json& j) {
    json r = j["rope_parameters"];
    j.erase("rope_parameters");
    j["rope_theta"] = r["rope_theta"];
    r.erase("rope_theta");
    r["type"] = r["rope_type"];  // the oldest spelling
    r.erase("rope_type");
    j["rope_scaling"] = r;
  });
  expect_matches_golden(&cpu_device(), dir_.string(), "llama3");
  copy_fixture("gemma3");
  edit_config([](json& j) {
    const json r = j["rope_parameters"];
    j.erase("rope_parameters");
    j.erase("layer_types");
    j["sliding_window_pattern"] = 6;
    j["rope_theta"] = r["full_attention"]["rope_theta"];
    j["rope_local_base_freq"] = r["sliding_attention"]["rope_theta"];
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", r["full_attention"]["factor"]}};
  });
  expect_matches_golden(&cpu_device(), dir_.string(), "gemma3");
}

TEST_F(BrokenHfFolder, MissingConfigKeyNamesFileAndKey) {
  edit_config([](json& j) { j.erase("num_hidden_layers"); });
  expect_format_error({"config.json", "num_hidden_layers"});
}

TEST_F(BrokenHfFolder, UnknownModelTypeIsNamed) {
  edit_config([](json& j) { j["model_type"] = "mamba"; });
  expect_format_error({"config.json", "mamba"});
}

TEST_F(BrokenHfFolder, MissingTensorIsNamed) {
  edit_config([](json& j) { j["num_hidden_layers"] = 3; });  // layer 2 does not exist
  expect_format_error({"model.layers.2.input_layernorm.weight"});
}

TEST_F(BrokenHfFolder, WrongShapeIsNamed) {
  edit_config([](json& j) { j["intermediate_size"] = 96; });
  expect_format_error({"model.layers.0.mlp.gate_proj.weight", "[128, 64]", "[96, 64]"});
}

TEST_F(BrokenHfFolder, UntiedWithoutLmHeadIsNamed) {
  edit_config([](json& j) { j["tie_word_embeddings"] = false; });
  expect_format_error({"lm_head.weight"});
}

// tokenizer.json merges come as [a, b] pairs (tokenizers >= 0.20) or "a b" strings (older files).
TEST_F(BrokenHfFolder, StringAndPairMergesEncodeAlike) {
  const std::string path = (dir_ / "tokenizer.json").string();
  const Tokenizer pairs = Tokenizer::from_hf_json(path);
  json j = load_json(path);
  ASSERT_TRUE(j["model"]["merges"][0].is_array());
  for (auto& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  std::ofstream(path) << j.dump();
  const Tokenizer strings = Tokenizer::from_hf_json(path);
  for (const char* text : {"The committee met on 12 March.", "  spaces\n\nand café"})
    EXPECT_EQ(pairs.encode(text), strings.encode(text)) << text;
}

TEST_F(BrokenHfFolder, UnsupportedPreTokenizerIsNamed) {
  const std::string path = (dir_ / "tokenizer.json").string();
  json j = load_json(path);
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  std::ofstream(path) << j.dump();
  expect_format_error({"tokenizer.json", "Metaspace"});
}

}  // namespace
}  // namespace kvz::test
