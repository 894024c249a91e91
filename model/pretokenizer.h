// Regex pre-tokenizer for byte-level BPE (model/, internal to the tokenizer): splits text into
// the pieces BPE runs on, with PCRE2 (UTF + UCP, so \p{L}, \p{N}, \s are Unicode-aware).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer.h"

namespace kvz {

// The regexes of one PreTokenizer, applied in sequence as llama.cpp's unicode_regex_split does:
// each regex splits every current piece into its matches and the text between matches.
class Pretokenizer {
 public:
  explicit Pretokenizer(PreTokenizer kind);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Pieces cover `text` exactly, in order. Invalid UTF-8 bytes become single-byte pieces and
  // split the valid text around them.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  void split_one(const void* code, std::string_view text, std::vector<std::string_view>& out) const;
  std::vector<void*> codes_;  // pcre2_code_8*, owned
};

// Length of the valid UTF-8 sequence starting at s[0], or 0 if it is invalid.
size_t utf8_valid_len(std::string_view s);

// Inverse of GPT-2's bytes_to_unicode() mapping (byte-level BPE vocabularies store tokens as
// mapped text); nullopt if `s` has a code point outside the mapping.
std::optional<std::string> gpt2_unmap_bytes(std::string_view s);

}  // namespace kvz
