// Tokenizer construction (model/): from a GGUF vocabulary, a tiktoken rank file or a llama2.c
// tokenizer.bin; plus the special-token specs of the tiktoken-based models.
#include <array>
#include <cstring>

#include "model/gguf_reader.h"
#include "model/mapped_file.h"
#include "model/pretokenizer.h"
#include "model/tokenizer.h"
#include "runtime/error.h"

namespace kvz {
namespace {

// GPT-2's bytes_to_unicode(): printable bytes map to themselves, the rest to U+0100 onwards.
std::array<uint32_t, 256> byte_to_codepoint() {
  std::array<uint32_t, 256> map{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    map[b] = printable ? b : next++;
  }
  return map;
}

}  // namespace

std::optional<std::string> gpt2_unmap_bytes(std::string_view s) {
  static const auto kInverse = [] {
    std::array<int, 324> inv;
    inv.fill(-1);
    const auto fwd = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) inv[fwd[b]] = b;
    return inv;
  }();
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_valid_len(s.substr(i));
    if (n == 0) return std::nullopt;
    uint32_t cp = n == 1 ? static_cast<unsigned char>(s[i]) : (s[i] & (0x7F >> n));
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (s[i + k] & 0x3F);
    if (cp >= kInverse.size() || kInverse[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(kInverse[cp]));
    i += n;
  }
  return out;
}

namespace {

PreTokenizer pre_from_name(const std::string& file, const std::string& pre) {
  if (pre == "default" || pre == "gpt-2" || pre == "gpt2") return PreTokenizer::kGpt2;
  if (pre == "llama-bpe" || pre == "llama3") return PreTokenizer::kLlama3;
  if (pre == "qwen2") return PreTokenizer::kQwen2;
  if (pre == "smollm") return PreTokenizer::kSmollm;
  throw FormatError(
      fmt::format("{}: tokenizer.ggml.pre '{}' is not supported (default, gpt-2, "
                  "llama-bpe, qwen2, smollm)",
                  file, pre));
}

int32_t special_id(const GgufReader& g, const char* key, int32_t n_vocab) {
  const auto id = g.opt_u32(key);
  if (!id) return -1;
  if (*id >= static_cast<uint32_t>(n_vocab))
    throw FormatError(
        fmt::format("{}: {} = {} outside the vocabulary of {}", g.name(), key, *id, n_vocab));
  return static_cast<int32_t>(*id);
}

// Decodes standard base64; nullopt on a malformed string.
std::optional<std::string> base64_decode(std::string_view s) {
  static constexpr std::string_view kAlpha =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (s.size() % 4 != 0) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '=') {
      if (i + 2 < s.size()) return std::nullopt;
      break;
    }
    const size_t v = kAlpha.find(s[i]);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const GgufReader& g) {
  Tokenizer t;
  const std::string& model = g.get_str("tokenizer.ggml.model");
  if (model == "gpt2")
    t.model_ = TokenizerModel::kBpe;
  else if (model == "llama")
    t.model_ = TokenizerModel::kSpm;
  else
    throw FormatError(fmt::format("{}: tokenizer.ggml.model '{}' is not supported (gpt2, llama)",
                                  g.name(), model));
  t.text_ = g.get_arr_str("tokenizer.ggml.tokens");
  const auto n = static_cast<int32_t>(t.text_.size());
  if (n == 0) throw FormatError(fmt::format("{}: empty tokenizer.ggml.tokens", g.name()));
  const auto check_len = [&](size_t len, const char* key) {
    if (len != t.text_.size())
      throw FormatError(fmt::format("{}: {} has {} entries, tokenizer.ggml.tokens has {}", g.name(),
                                    key, len, n));
  };
  if (g.has("tokenizer.ggml.scores")) {
    t.scores_ = g.get_arr_f32("tokenizer.ggml.scores");
    check_len(t.scores_.size(), "tokenizer.ggml.scores");
  }
  if (g.has("tokenizer.ggml.token_type")) {
    const auto types = g.get_arr_i32("tokenizer.ggml.token_type");
    check_len(types.size(), "tokenizer.ggml.token_type");
    for (int32_t v : types)
      t.types_.push_back(v >= 0 && v <= 6 ? static_cast<TokenType>(v) : TokenType::kNormal);
  }
  t.types_.resize(t.text_.size(), TokenType::kNormal);
  t.bos_ = special_id(g, "tokenizer.ggml.bos_token_id", n);
  t.eos_ = special_id(g, "tokenizer.ggml.eos_token_id", n);
  t.eot_ = special_id(g, "tokenizer.ggml.eot_token_id", n);
  t.eom_ = special_id(g, "tokenizer.ggml.eom_token_id", n);
  t.unk_ = special_id(g, "tokenizer.ggml.unknown_token_id", n);
  const bool spm = t.model_ == TokenizerModel::kSpm;
  t.add_bos_ = g.opt_bool("tokenizer.ggml.add_bos_token").value_or(spm);
  t.add_eos_ = g.opt_bool("tokenizer.ggml.add_eos_token").value_or(false);
  t.add_space_prefix_ = g.opt_bool("tokenizer.ggml.add_space_prefix").value_or(spm);
  if (spm) {
    if (t.unk_ < 0) t.unk_ = 0;  // llama.cpp's SPM default
    if (t.scores_.empty())
      throw FormatError(fmt::format("{}: SPM vocabulary needs tokenizer.ggml.scores", g.name()));
    t.finalize();
    return t;
  }

  t.pre_ = pre_from_name(g.name(), g.opt_str("tokenizer.ggml.pre").value_or("default"));
  t.ignore_merges_ = t.pre_ == PreTokenizer::kLlama3;
  // Byte-level vocabularies store GPT-2-mapped text; convert to raw bytes (specials stay).
  for (int32_t id = 0; id < n; ++id) {
    if (t.types_[id] == TokenType::kControl) continue;
    if (auto raw = gpt2_unmap_bytes(t.text_[id])) t.text_[id] = std::move(*raw);
  }
  t.finalize();
  const auto& merges = g.get_arr_str("tokenizer.ggml.merges");
  t.merge_rank_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& m = merges[rank];
    const size_t sp = m.find(' ', 1);
    const auto left = sp == std::string::npos ? std::nullopt : gpt2_unmap_bytes(m.substr(0, sp));
    const auto right = sp == std::string::npos ? std::nullopt : gpt2_unmap_bytes(m.substr(sp + 1));
    if (!left || !right)
      throw FormatError(
          fmt::format("{}: tokenizer.ggml.merges[{}] '{}' is malformed", g.name(), rank, m));
    const auto l = t.piece_to_id_.find(*left), r = t.piece_to_id_.find(*right);
    if (l == t.piece_to_id_.end() || r == t.piece_to_id_.end()) continue;  // unusable merge
    const uint64_t key = (uint64_t(uint32_t(l->second)) << 32) | uint32_t(r->second);
    t.merge_rank_.emplace(key, static_cast<int32_t>(rank));
  }
  return t;
}

Tokenizer Tokenizer::from_tiktoken(const std::string& path, const TiktokenSpec& spec) {
  const MappedFile file(path);
  const std::string_view text(reinterpret_cast<const char*>(file.bytes().data()),
                              file.bytes().size());
  Tokenizer t;
  t.model_ = TokenizerModel::kBpe;
  t.pre_ = spec.pre;
  t.rank_is_id_ = true;
  t.ignore_merges_ = true;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF files exist
    const size_t line_start = pos;
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    const auto bytes =
        sp == std::string_view::npos ? std::nullopt : base64_decode(line.substr(0, sp));
    const std::string_view rank_str = sp == std::string_view::npos ? "" : line.substr(sp + 1);
    if (!bytes || bytes->empty() || rank_str != std::to_string(t.text_.size()))
      throw FormatError(fmt::format("{}: line {} (byte {}): expected '<base64> {}'", path, line_no,
                                    line_start, t.text_.size()));
    t.text_.push_back(std::move(*bytes));
  }
  for (const std::string& s : spec.specials) {
    t.text_.push_back(s);
    t.types_.resize(t.text_.size() - 1, TokenType::kNormal);
    t.types_.push_back(TokenType::kControl);
  }
  const auto find_special = [&](const std::string& s) -> int32_t {
    if (s.empty()) return -1;
    for (size_t i = 0; i < spec.specials.size(); ++i)
      if (spec.specials[i] == s)
        return static_cast<int32_t>(t.text_.size() - spec.specials.size() + i);
    throw InputError(fmt::format("tiktoken spec: '{}' is not one of its special tokens", s));
  };
  t.bos_ = find_special(spec.bos);
  t.eos_ = find_special(spec.eos);
  t.eot_ = find_special(spec.eot);
  t.add_bos_ = spec.add_bos;
  t.add_space_prefix_ = false;
  t.finalize();
  return t;
}

Tokenizer Tokenizer::from_llama2c(const std::string& path) {
  const MappedFile file(path);
  const auto b = file.bytes();
  size_t pos = 0;
  const auto read_i32 = [&](const char* what) {
    if (b.size() - pos < 4)
      throw FormatError(fmt::format("{}: truncated reading {} at byte {}", path, what, pos));
    int32_t v;
    std::memcpy(&v, b.data() + pos, 4);
    pos += 4;
    return v;
  };
  const int32_t max_len = read_i32("max_token_length");
  if (max_len <= 0 || max_len > 4096)
    throw FormatError(fmt::format("{}: absurd max_token_length {} at byte 0", path, max_len));
  Tokenizer t;
  t.model_ = TokenizerModel::kSpm;
  while (pos < b.size()) {
    const size_t at = pos;
    int32_t score_bits = read_i32("score");
    float score;
    std::memcpy(&score, &score_bits, 4);
    const int32_t len = read_i32("length");
    if (len < 0 || len > max_len || static_cast<size_t>(len) > b.size() - pos)
      throw FormatError(
          fmt::format("{}: token {} at byte {}: bad length {}", path, t.text_.size(), at, len));
    std::string s(reinterpret_cast<const char*>(b.data() + pos), static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    const auto id = static_cast<int32_t>(t.text_.size());
    TokenType type = TokenType::kNormal;
    if (id == 0)
      type = TokenType::kUnknown;
    else if (id <= 2)
      type = TokenType::kControl, s = id == 1 ? "<s>" : "</s>";
    else if (s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>')
      type = TokenType::kByte;
    else {
      size_t k = 0;  // the export replaced "▁" by " "; restore it
      while ((k = s.find(' ', k)) != std::string::npos) s.replace(k, 1, "\xE2\x96\x81"), k += 3;
    }
    t.text_.push_back(std::move(s));
    t.scores_.push_back(score);
    t.types_.push_back(type);
  }
  if (t.text_.size() < 3)
    throw FormatError(fmt::format("{}: only {} tokens", path, t.text_.size()));
  t.unk_ = 0, t.bos_ = 1, t.eos_ = 2;
  t.add_bos_ = true;
  t.add_space_prefix_ = true;
  t.finalize();
  return t;
}

Tokenizer Tokenizer::synthetic(int32_t n_vocab) {
  if (n_vocab < 259)
    throw InputError(fmt::format("synthetic vocabulary of {} < 259 tokens", n_vocab));
  Tokenizer t;
  t.model_ = TokenizerModel::kSpm;
  t.text_ = {"<unk>", "<s>", "</s>"};
  t.types_ = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    t.text_.push_back(fmt::format("<0x{:02X}>", b));
    t.types_.push_back(TokenType::kByte);
  }
  while (static_cast<int32_t>(t.text_.size()) < n_vocab) {
    t.text_.push_back(fmt::format("\xE2\x96\x81t{}", t.text_.size()));
    t.types_.push_back(TokenType::kNormal);
  }
  t.scores_.assign(t.text_.size(), 0.0f);
  t.unk_ = 0, t.bos_ = 1, t.eos_ = 2;
  t.add_bos_ = true;
  t.finalize();
  return t;
}

TiktokenSpec tiktoken_spec_llama3() {
  TiktokenSpec s;
  s.pre = PreTokenizer::kLlama3;
  s.specials = {"<|begin_of_text|>",
                "<|end_of_text|>",
                "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>",
                "<|finetune_right_pad_id|>",
                "<|step_id|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eom_id|>",
                "<|eot_id|>",
                "<|python_tag|>",
                "<|image|>"};
  for (int i = 2; s.specials.size() < 256; ++i)
    s.specials.push_back(fmt::format("<|reserved_special_token_{}|>", i));
  s.bos = "<|begin_of_text|>";
  s.eos = "<|end_of_text|>";
  s.eot = "<|eot_id|>";
  s.add_bos = true;
  return s;
}

TiktokenSpec tiktoken_spec_qwen2() {
  TiktokenSpec s;
  s.pre = PreTokenizer::kQwen2;
  s.specials = {"<|endoftext|>",      "<|im_start|>",     "<|im_end|>",     "<|object_ref_start|>",
                "<|object_ref_end|>", "<|box_start|>",    "<|box_end|>",    "<|quad_start|>",
                "<|quad_end|>",       "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                "<|image_pad|>",      "<|video_pad|>",    "<tool_call>",    "</tool_call>",
                "<|fim_prefix|>",     "<|fim_middle|>",   "<|fim_suffix|>", "<|fim_pad|>",
                "<|repo_name|>",      "<|file_sep|>"};
  s.eos = "<|endoftext|>";
  s.eot = "<|im_end|>";
  return s;
}

}  // namespace kvz
