// Tokenizer conformance (tests/model/): llama.cpp's vocab test vectors (made with the Hugging
// Face tokenizers of the reference models) for gpt-2 and llama-spm GGUF vocabularies, LLaMA 3 and
// Qwen2 via their tiktoken rank files, and the llama2.c tokenizer.bin loader.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "model/gguf_reader.h"
#include "runtime/error.h"
#include "tests/model/gguf_writer.h"
#include "tests/model/test_data.h"

namespace kvz {
namespace {

struct Vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> expected;
};

// See tests/data/tokenizers/llama-cpp-vocab/SOURCE.md for the format.
Vectors load_vectors(const std::string& vocab) {
  const std::string base = test::data_path("tokenizers/llama-cpp-vocab/ggml-vocab-" + vocab);
  const std::string inp = test::read_text(base + ".gguf.inp");
  const std::string out = test::read_text(base + ".gguf.out");
  Vectors v;
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0, next; (next = inp.find(sep, pos)) != std::string::npos;
       pos = next + sep.size())
    v.inputs.push_back(inp.substr(pos, next - pos));
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream ids(line);
    v.expected.emplace_back();
    for (int32_t id; ids >> id;) v.expected.back().push_back(id);
  }
  return v;
}

void expect_conformance(const Tokenizer& tok, const std::string& vocab, bool skip_empty = false) {
  const Vectors v = load_vectors(vocab);
  ASSERT_EQ(v.inputs.size(), 46u);
  ASSERT_EQ(v.expected.size(), v.inputs.size());
  int n_ok = 0;
  for (size_t i = 0; i < v.inputs.size(); ++i) {
    if (skip_empty && v.inputs[i].empty()) {
      ++n_ok;
      continue;
    }
    const auto got = tok.encode(v.inputs[i], /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(got, v.expected[i]) << vocab << " #" << i << " '" << v.inputs[i] << "'";
    n_ok += got == v.expected[i];
    // Every vector must also round-trip through decode.
    EXPECT_EQ(tok.decode(got), v.inputs[i]) << vocab << " #" << i;
  }
  EXPECT_EQ(n_ok, 46);
}

TEST(Tokenizer, Gpt2GgufMatchesLlamaCppVectors) {
  const GgufReader g(test::data_path("tokenizers/llama-cpp-vocab/ggml-vocab-gpt-2.gguf"));
  const Tokenizer tok = Tokenizer::from_gguf(g);
  EXPECT_EQ(tok.n_vocab(), 50257);
  EXPECT_EQ(tok.model(), TokenizerModel::kBpe);
  expect_conformance(tok, "gpt-2");
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_TRUE(tok.is_eog(50256));
  EXPECT_EQ(tok.encode("a<|endoftext|>", false, true), (std::vector<int32_t>{64, 50256}));
  EXPECT_NE(tok.encode("a<|endoftext|>", false, false).back(), 50256);
}

TEST(Tokenizer, LlamaSpmGgufMatchesLlamaCppVectors) {
  const GgufReader g(test::data_path("tokenizers/llama-cpp-vocab/ggml-vocab-llama-spm.gguf"));
  const Tokenizer tok = Tokenizer::from_gguf(g);
  EXPECT_EQ(tok.n_vocab(), 32000);
  EXPECT_EQ(tok.model(), TokenizerModel::kSpm);
  expect_conformance(tok, "llama-spm");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.encode("Hello", true).front(), 1);
  EXPECT_TRUE(tok.encode("", false).empty());
  EXPECT_EQ(tok.encode("", true), (std::vector<int32_t>{1}));
  EXPECT_EQ(tok.decode(tok.encode(" Hello\n", true)), "<s> Hello\n");
  EXPECT_EQ(tok.decode(tok.encode(" Hello\n", true), /*skip_special=*/true), " Hello\n");
  EXPECT_EQ(tok.token_piece(tok.find_token("<0x0A>")), "\n");
}

TEST(Tokenizer, Llama3TiktokenMatchesLlamaCppVectors) {
  const Tokenizer tok = Tokenizer::from_tiktoken(
      test::data_path("tokenizers/llama3/tokenizer.model"), tiktoken_spec_llama3());
  EXPECT_EQ(tok.n_vocab(), 128256);
  expect_conformance(tok, "llama-bpe");
  EXPECT_EQ(tok.bos_id(), 128000);
  EXPECT_EQ(tok.eot_id(), 128009);
  EXPECT_TRUE(tok.is_eog(128009));
  EXPECT_TRUE(tok.is_eog(128008));  // <|eom_id|>
  EXPECT_FALSE(tok.is_eog(128006));
  const auto ids =
      tok.encode("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", true, true);
  ASSERT_EQ(ids.size(), 7u);
  EXPECT_EQ(ids[0], 128000);
  EXPECT_EQ(ids[1], 128006);
  EXPECT_EQ(ids[3], 128007);
  EXPECT_EQ(ids[6], 128009);
  EXPECT_EQ(tok.decode(ids, true), "user\n\nHi");
}

TEST(Tokenizer, Qwen2TiktokenMatchesLlamaCppVectors) {
  const Tokenizer tok = Tokenizer::from_tiktoken(test::data_path("tokenizers/qwen/qwen.tiktoken"),
                                                 tiktoken_spec_qwen2());
  EXPECT_EQ(tok.n_vocab(), 151665);
  expect_conformance(tok, "qwen2");
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_EQ(tok.find_token("<|im_start|>"), 151644);
  EXPECT_TRUE(tok.is_eog(151645));
  const auto ids = tok.encode("<|im_start|>user\nhi<|im_end|>", true, true);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids.back(), 151645);
}

TEST(Tokenizer, Llama2cTokenizerBinMatchesSpmVectors) {
  // The 32k llama2.c export of the LLaMA 2 vocabulary gives the same ids as llama-spm.
  const Tokenizer tok = Tokenizer::from_llama2c(test::data_path("tokenizers/llama2/tokenizer.bin"));
  EXPECT_EQ(tok.n_vocab(), 32000);
  expect_conformance(tok, "llama-spm");
}

TEST(Tokenizer, Stories260KDecodesReferenceSample) {
  const Tokenizer tok = Tokenizer::from_llama2c(test::data_path("stories260K/tok512.bin"));
  EXPECT_EQ(tok.n_vocab(), 512);
  const auto j = nlohmann::json::parse(
      test::read_text(test::data_path("stories260K/expected_greedy_256.json")));
  std::vector<int32_t> ids = {tok.bos_id()};
  for (int32_t id : j["token_ids"].get<std::vector<int32_t>>()) ids.push_back(id);
  EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), j["text"].get<std::string>());
  // Re-encoding the text must decode back to it (BPE need not reproduce the sampled ids).
  const std::string text = j["text"];
  EXPECT_EQ(tok.decode(tok.encode(text, true), true), text);
}

TEST(Tokenizer, BadInputsThrow) {
  const Tokenizer tok = Tokenizer::from_llama2c(test::data_path("stories260K/tok512.bin"));
  EXPECT_THROW((void)tok.token_piece(512), InputError);
  EXPECT_THROW((void)tok.decode(std::vector<int32_t>{-1}), InputError);
  // Invalid UTF-8 goes through byte fallback and round-trips.
  const std::string bad = "a\xff\xfe b\xc3";
  EXPECT_EQ(tok.decode(tok.encode(bad)), bad);
  EXPECT_THROW(
      Tokenizer::from_tiktoken(test::data_path("stories260K/SOURCE.md"), tiktoken_spec_qwen2()),
      FormatError);
  EXPECT_THROW(Tokenizer::from_llama2c(test::data_path("stories260K/SOURCE.md")), FormatError);
}

}  // namespace
}  // namespace kvz

namespace kvz {
namespace {

// Random byte strings (valid and invalid UTF-8) must encode to in-range ids and, for these
// byte-complete vocabularies, decode back exactly.
TEST(Tokenizer, RandomBytesRoundTrip) {
  const GgufReader g(test::data_path("tokenizers/llama-cpp-vocab/ggml-vocab-gpt-2.gguf"));
  const Tokenizer bpe = Tokenizer::from_gguf(g);
  const Tokenizer spm = Tokenizer::from_llama2c(test::data_path("stories260K/tok512.bin"));
  uint64_t state = 0xD1B54A32D192ED03ull;
  const auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  // No literal U+2581 "▁": SPM reads it as a space (as SentencePiece does), so it cannot
  // round-trip there.
  const std::string alphabet = std::string("ab \n\t'1") + "\xC3\xA9\xF0\x9F\x98\x80";
  for (int iter = 0; iter < 300; ++iter) {
    std::string s;
    const size_t n = next() % 40;
    for (size_t i = 0; i < n; ++i)
      s.push_back(next() % 4 == 0 ? static_cast<char>(next()) : alphabet[next() % alphabet.size()]);
    for (const Tokenizer* tok : {&bpe, &spm}) {
      const auto ids = tok->encode(s, false, true);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->n_vocab());
      EXPECT_EQ(tok->decode(ids), s);
    }
  }
}

TEST(Tokenizer, GgufVocabularyErrors) {
  const auto error_of = [](test::GgufWriter& w) -> std::string {
    const auto bytes = w.finish();
    try {
      (void)Tokenizer::from_gguf(GgufReader(bytes, "v.gguf"));
    } catch (const FormatError& e) {
      return e.what();
    }
    return "";
  };
  {
    test::GgufWriter w;
    w.kv_str("tokenizer.ggml.model", "bert");
    EXPECT_NE(error_of(w).find("'bert' is not supported"), std::string::npos);
  }
  {
    test::GgufWriter w;
    w.kv_str("tokenizer.ggml.model", "llama");
    w.kv_arr_str("tokenizer.ggml.tokens", {"<unk>", "a"});
    w.kv_arr<float>("tokenizer.ggml.scores", 6, {0.f});
    EXPECT_NE(error_of(w).find("scores has 1 entries"), std::string::npos) << error_of(w);
  }
  {
    test::GgufWriter w;
    w.kv_str("tokenizer.ggml.model", "gpt2");
    w.kv_str("tokenizer.ggml.pre", "mystery");
    w.kv_arr_str("tokenizer.ggml.tokens", {"a"});
    EXPECT_NE(error_of(w).find("'mystery' is not supported"), std::string::npos);
  }
  {
    test::GgufWriter w;
    w.kv_str("tokenizer.ggml.model", "gpt2");
    w.kv_arr_str("tokenizer.ggml.tokens", {"a"});
    w.kv<uint32_t>("tokenizer.ggml.eos_token_id", 4, 7);
    EXPECT_NE(error_of(w).find("eos_token_id = 7 outside"), std::string::npos);
  }
  {
    test::GgufWriter w;
    w.kv_str("tokenizer.ggml.model", "gpt2");
    w.kv_arr_str("tokenizer.ggml.tokens", {"a"});
    EXPECT_NE(error_of(w).find("missing key 'tokenizer.ggml.merges'"), std::string::npos);
  }
}

}  // namespace
}  // namespace kvz
