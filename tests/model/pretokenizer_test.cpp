// Pre-tokenizer regex tests (tests/model/): hand-derived splits that pin the differences between
// the regex sets (digit grouping, contractions, whitespace runs).
#include "model/pretokenizer.h"

#include <gtest/gtest.h>

namespace kvz {
namespace {

std::vector<std::string> split(PreTokenizer kind, std::string_view text) {
  const Pretokenizer p(kind);
  std::vector<std::string> out;
  for (std::string_view s : p.split(text)) out.emplace_back(s);
  return out;
}

using V = std::vector<std::string>;

TEST(Pretokenizer, DigitGrouping) {
  EXPECT_EQ(split(PreTokenizer::kGpt2, "ab 12345"), (V{"ab", " 12345"}));
  EXPECT_EQ(split(PreTokenizer::kLlama3, "ab 12345"), (V{"ab", " ", "123", "45"}));
  EXPECT_EQ(split(PreTokenizer::kQwen2, "ab 123"), (V{"ab", " ", "1", "2", "3"}));
  // llama.cpp's SMOLLM set: \p{N} first, then GPT-2's regex on each remaining piece.
  EXPECT_EQ(split(PreTokenizer::kSmollm, "ab 123"), (V{"ab", " ", "1", "2", "3"}));
}

TEST(Pretokenizer, ContractionsAndSpaces) {
  EXPECT_EQ(split(PreTokenizer::kGpt2, "I'LL go  now"), (V{"I", "'", "LL", " go", " ", " now"}));
  EXPECT_EQ(split(PreTokenizer::kLlama3, "I'LL go  now"), (V{"I", "'LL", " go", " ", " now"}));
  EXPECT_EQ(split(PreTokenizer::kLlama3, "a\n\n b"), (V{"a", "\n\n", " b"}));
}

TEST(Pretokenizer, UnicodeAndInvalidBytes) {
  EXPECT_EQ(split(PreTokenizer::kGpt2, "h\xC3\xA9llo \xD0\xBC\xD0\xB8\xD1\x80"),
            (V{"h\xC3\xA9llo", " \xD0\xBC\xD0\xB8\xD1\x80"}));
  EXPECT_EQ(split(PreTokenizer::kGpt2,
                  "ab\xFF"
                  "cd"),
            (V{"ab", "\xFF", "cd"}));
  EXPECT_TRUE(split(PreTokenizer::kQwen2, "").empty());
}

}  // namespace
}  // namespace kvz
