// Tokenizer core (model/): special-token partition, byte-level BPE and SentencePiece-style BPE
// encoding, decoding. Algorithms follow llama.cpp's llama-vocab.cpp (llm_tokenizer_bpe/spm).
#include "model/tokenizer.h"

#include <algorithm>
#include <climits>
#include <optional>
#include <queue>
#include <variant>

#include "model/pretokenizer.h"
#include "runtime/error.h"

namespace kvz {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 "▁"

bool is_special_type(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t i = 0;
  while (true) {
    const size_t j = s.find(from, i);
    out.append(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) return out;
    out.append(to);
    i = j + from.size();
  }
}

// A piece of the input: plain text to tokenize, or an already-recognised special token id.
using Fragment = std::variant<std::string_view, int32_t>;

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

void Tokenizer::finalize() {
  const auto n = static_cast<int32_t>(text_.size());
  types_.resize(text_.size(), TokenType::kNormal);
  scores_.resize(text_.size(), 0.0f);
  byte_to_id_.assign(256, -1);
  piece_to_id_.clear();
  specials_.clear();
  for (int32_t id = 0; id < n; ++id) {
    const TokenType t = types_[id];
    if (is_special_type(t) && !text_[id].empty()) specials_.push_back(id);
    if (t == TokenType::kByte) {
      // SPM byte fallback token "<0xNN>".
      const std::string& s = text_[id];
      const auto hex = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      };
      if (s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' && hex(s[3]) >= 0 &&
          hex(s[4]) >= 0)
        byte_to_id_[hex(s[3]) * 16 + hex(s[4])] = id;
      continue;
    }
    if (t == TokenType::kControl || t == TokenType::kUnknown) continue;
    piece_to_id_.emplace(text_[id], id);  // first id wins on duplicates
    if (model_ == TokenizerModel::kBpe && text_[id].size() == 1)
      byte_to_id_[static_cast<unsigned char>(text_[id][0])] = id;
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [&](int32_t a, int32_t b) { return text_[a].size() > text_[b].size(); });
  static constexpr std::string_view kEogTexts[] = {
      "<|eot_id|>", "<|eom_id|>",    "<|im_end|>", "<|endoftext|>",
      "<|end|>",    "<end_of_turn>", "<EOT>",      "<|end_of_text|>"};
  eog_ids_.clear();
  for (int32_t id : {eos_, eot_, eom_})
    if (id >= 0) eog_ids_.push_back(id);
  for (int32_t id : specials_)
    if (std::find(std::begin(kEogTexts), std::end(kEogTexts), text_[id]) != std::end(kEogTexts))
      eog_ids_.push_back(id);
  if (model_ == TokenizerModel::kBpe) pretok_ = std::make_unique<Pretokenizer>(pre_);
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    throw InputError(fmt::format("token id {} outside the vocabulary [0, {})", id, n_vocab()));
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id);
  return text_[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
  check_id(id);
  return types_[id];
}

int32_t Tokenizer::find_token(std::string_view text) const {
  const auto it = piece_to_id_.find(std::string(text));
  if (it != piece_to_id_.end()) return it->second;
  for (int32_t id : specials_)
    if (text_[id] == text) return id;
  for (int32_t id = 0; id < n_vocab(); ++id)
    if (types_[id] == TokenType::kByte && text_[id] == text) return id;
  return -1;
}

bool Tokenizer::is_eog(int32_t id) const {
  return std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  // Special tokens, longest first, split the raw fragments (llama.cpp tokenizer_st_partition).
  std::vector<Fragment> frags;
  if (!text.empty()) frags.emplace_back(text);
  for (int32_t id : specials_) {
    if (!parse_special && types_[id] != TokenType::kUserDefined) continue;
    const std::string& sp = text_[id];
    std::vector<Fragment> next;
    for (const Fragment& f : frags) {
      const auto* raw = std::get_if<std::string_view>(&f);
      if (raw == nullptr) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = *raw;
      for (size_t at; (at = rest.find(sp)) != std::string_view::npos;) {
        if (at > 0) next.emplace_back(rest.substr(0, at));
        next.emplace_back(id);
        rest.remove_prefix(at + sp.size());
      }
      if (!rest.empty()) next.emplace_back(rest);
    }
    frags = std::move(next);
  }

  std::vector<int32_t> out;
  if (add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);
  bool prev_special = true;  // SPM: the dummy-prefix space goes after BOS/specials only
  for (const Fragment& f : frags) {
    if (const auto* id = std::get_if<int32_t>(&f)) {
      out.push_back(*id);
      prev_special = true;
      continue;
    }
    const std::string_view raw = std::get<std::string_view>(f);
    if (model_ == TokenizerModel::kBpe) {
      encode_bpe(raw, out);
    } else {
      std::string s = add_space_prefix_ && prev_special ? " " : "";
      s.append(raw);
      encode_spm(replace_all(s, " ", kSpmSpace), out);
    }
    prev_special = false;
  }
  if (add_special && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

void Tokenizer::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  for (std::string_view word : pretok_->split(text)) {
    if (ignore_merges_) {
      const auto it = piece_to_id_.find(std::string(word));
      if (it != piece_to_id_.end()) {
        out.push_back(it->second);
        continue;
      }
    }
    bpe_word(word, out);
  }
}

// Repeatedly merges the adjacent pair of lowest rank (leftmost on ties) until none merges.
// O(len^2) per pre-token, which the pre-tokenizer keeps short.
void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<int32_t> parts;
  parts.reserve(word.size());
  for (char c : word) {
    const int32_t id = byte_to_id_[static_cast<unsigned char>(c)];
    if (id < 0)
      throw FormatError(fmt::format("byte-level BPE vocabulary has no token for byte 0x{:02x}",
                                    static_cast<unsigned char>(c)));
    parts.push_back(id);
  }
  std::string joined;
  while (parts.size() > 1) {
    int32_t best_rank = INT32_MAX, best_id = -1;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      joined = text_[parts[i]];
      joined += text_[parts[i + 1]];
      const auto it = piece_to_id_.find(joined);
      if (it == piece_to_id_.end()) continue;
      int32_t rank = it->second;
      if (!rank_is_id_) {
        const uint64_t key = (uint64_t(uint32_t(parts[i])) << 32) | uint32_t(parts[i + 1]);
        const auto m = merge_rank_.find(key);
        if (m == merge_rank_.end()) continue;
        rank = m->second;
      }
      if (rank < best_rank) best_rank = rank, best_id = it->second, best_i = i;
    }
    if (best_id < 0) break;
    parts[best_i] = best_id;
    parts.erase(parts.begin() + static_cast<long>(best_i) + 1);
  }
  out.insert(out.end(), parts.begin(), parts.end());
}

// SentencePiece-style BPE (llama.cpp llm_tokenizer_spm): start from UTF-8 characters, merge the
// adjacent pair whose concatenation is a vocabulary piece of highest score (leftmost on ties);
// characters left unknown fall back to <0xNN> byte tokens, else <unk>.
void Tokenizer::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  struct Symbol {
    int prev, next;
    size_t pos, len;
  };
  std::vector<Symbol> sym;
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = std::max<size_t>(1, utf8_valid_len(text.substr(pos)));
    const int i = static_cast<int>(sym.size());
    sym.push_back({i - 1, i + 1, pos, len});
    pos += len;
  }
  if (sym.empty()) return;
  sym.back().next = -1;
  struct Bigram {
    float score;
    int left, right;
    size_t len;
    bool operator<(const Bigram& o) const {
      return score < o.score || (score == o.score && left > o.left);
    }
  };
  std::priority_queue<Bigram> queue;
  const auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const auto it =
        piece_to_id_.find(std::string(text.substr(sym[l].pos, sym[l].len + sym[r].len)));
    if (it == piece_to_id_.end()) return;
    queue.push({scores_[it->second], l, r, sym[l].len + sym[r].len});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // stale entry
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = 0; i >= 0; i = sym[i].next) {
    const std::string_view piece = text.substr(sym[i].pos, sym[i].len);
    const auto it = piece_to_id_.find(std::string(piece));
    if (it != piece_to_id_.end()) {
      out.push_back(it->second);
      continue;
    }
    for (char c : piece) {
      const int32_t id = byte_to_id_[static_cast<unsigned char>(c)];
      out.push_back(id >= 0 ? id : unk_);
    }
  }
}

std::string Tokenizer::token_piece(int32_t id) const {
  check_id(id);
  const std::string& s = text_[id];
  if (model_ == TokenizerModel::kBpe) return s;
  if (types_[id] == TokenType::kByte) {
    const auto it = std::find(byte_to_id_.begin(), byte_to_id_.end(), id);
    return std::string(1, static_cast<char>(it - byte_to_id_.begin()));
  }
  if (types_[id] == TokenType::kNormal || types_[id] == TokenType::kUserDefined)
    return replace_all(s, kSpmSpace, " ");
  return s;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    check_id(id);
    if (skip_special && types_[id] == TokenType::kControl) continue;
    std::string piece = token_piece(id);
    if (id == bos_ && first) {
      if (!skip_special) out += piece;
      continue;
    }
    if (first && model_ == TokenizerModel::kSpm && add_space_prefix_ && !piece.empty() &&
        piece[0] == ' ')
      piece.erase(0, 1);
    first = false;
    out += piece;
  }
  return out;
}

}  // namespace kvz
