// PCRE2 implementation of the BPE pre-tokenizers (model/). Regexes are those of llama.cpp's
// llama-vocab.cpp, in their original (tokenizer.json) form, since PCRE2 supports lookahead;
// case-insensitive contractions are spelled out ASCII-only as llama.cpp does.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/pretokenizer.h"

#include <pcre2.h>

#include "runtime/error.h"

namespace kvz {
namespace {

constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<const char*> regexes(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::kGpt2:
      return {kGpt2};
    case PreTokenizer::kLlama3:
      return {kLlama3};
    case PreTokenizer::kQwen2:
      return {kQwen2};
    case PreTokenizer::kSmollm:
      return {R"(\p{N})", kGpt2};
  }
  return {kGpt2};
}

}  // namespace

size_t utf8_valid_len(std::string_view s) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t n = 0;
  uint32_t cp = 0;
  if (b0 < 0x80) return 1;
  if ((b0 & 0xE0) == 0xC0)
    n = 2, cp = b0 & 0x1F;
  else if ((b0 & 0xF0) == 0xE0)
    n = 3, cp = b0 & 0x0F;
  else if ((b0 & 0xF8) == 0xF0)
    n = 4, cp = b0 & 0x07;
  else
    return 0;
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

Pretokenizer::Pretokenizer(PreTokenizer kind) {
  for (const char* re : regexes(kind)) {
    int err = 0;
    PCRE2_SIZE err_at = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re), PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &err_at, nullptr);
    KVZ_CHECK(code != nullptr, "pre-tokenizer regex failed to compile at {}: error {}", err_at,
              err);
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; failure is fine
    codes_.push_back(code);
  }
}

Pretokenizer::~Pretokenizer() {
  for (void* c : codes_) pcre2_code_free(static_cast<pcre2_code*>(c));
}

void Pretokenizer::split_one(const void* code_v, std::string_view text,
                             std::vector<std::string_view>& out) const {
  const auto* code = static_cast<const pcre2_code*>(code_v);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  KVZ_CHECK(md != nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0, last = 0;
  while (start < text.size()) {
    // The text was validated as UTF-8 by split(), so skip PCRE2's own check.
    const int rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH (or a resource limit: rest stays one piece)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t s = ov[0], e = ov[1];
    if (e == s) {  // empty match: step over one character
      start = s + std::max<size_t>(1, utf8_valid_len(text.substr(s)));
      continue;
    }
    if (s > last) out.push_back(text.substr(last, s - last));
    out.push_back(text.substr(s, e - s));
    last = start = e;
  }
  if (last < text.size()) out.push_back(text.substr(last));
  pcre2_match_data_free(md);
}

std::vector<std::string_view> Pretokenizer::split(std::string_view text) const {
  // Valid UTF-8 runs, with each invalid byte as its own piece.
  std::vector<std::string_view> pieces;
  std::vector<bool> valid;
  size_t run = 0, i = 0;
  while (i < text.size()) {
    const size_t n = utf8_valid_len(text.substr(i));
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > run) pieces.push_back(text.substr(run, i - run)), valid.push_back(true);
    pieces.push_back(text.substr(i, 1)), valid.push_back(false);
    run = ++i;
  }
  if (i > run) pieces.push_back(text.substr(run, i - run)), valid.push_back(true);

  for (const void* code : codes_) {
    std::vector<std::string_view> next;
    std::vector<bool> next_valid;
    for (size_t k = 0; k < pieces.size(); ++k) {
      if (valid[k])
        split_one(code, pieces[k], next);
      else
        next.push_back(pieces[k]);
      next_valid.resize(next.size(), valid[k]);
    }
    pieces = std::move(next);
    valid = std::move(next_valid);
  }
  return pieces;
}

}  // namespace kvz
