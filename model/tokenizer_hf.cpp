// Tokenizer construction from a Hugging Face tokenizer.json (byte-level BPE, or SentencePiece-
// converted BPE with byte fallback), with special-token
// settings from tokenizer_config.json / config.json beside it (model/).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/mapped_file.h"
#include "model/pretokenizer.h"
#include "model/tokenizer.h"
#include "runtime/error.h"

namespace kvz {
namespace {

using nlohmann::json;

// Parses a JSON file; nullopt if it does not exist and `optional`.
// Read through MappedFile: a regular file only (a named pipe must not block the load).
std::optional<json> read_json(const std::filesystem::path& p, bool optional) {
  std::error_code ec;
  if (optional && !std::filesystem::exists(p, ec)) return std::nullopt;
  const MappedFile f(p.string());
  try {
    return json::parse(f.bytes().begin(), f.bytes().end());
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("{}: invalid JSON: {}", p.string(), e.what()));
  }
}

// The regex set a Split pattern stands for, recognised by its digit rule.
std::optional<PreTokenizer> pre_from_regex(const std::string& re) {
  if (re.find("\\p{N}{1,3}") != std::string::npos) return PreTokenizer::kLlama3;
  if (re.find("|\\p{N}|") != std::string::npos) return PreTokenizer::kQwen2;
  if (re.find(" ?\\p{N}+") != std::string::npos) return PreTokenizer::kGpt2;
  return std::nullopt;
}

// Maps the pre_tokenizer object to a PreTokenizer: ByteLevel(use_regex) = GPT-2; Split(regex) +
// ByteLevel = the regex's set; Digits(individual) + ByteLevel(use_regex) = SmolLM.
PreTokenizer pre_from_json(const std::string& file, const json& pre) {
  std::vector<json> steps;
  if (pre.is_object() && pre.value("type", "") == "Sequence")
    steps = pre.value("pretokenizers", std::vector<json>{});
  else if (pre.is_object())
    steps.push_back(pre);
  std::optional<PreTokenizer> split;
  bool digits = false, byte_level = false, byte_regex = false;
  for (const json& s : steps) {
    const std::string type = s.value("type", "");
    if (type == "ByteLevel") {
      byte_level = true;
      byte_regex = s.value("use_regex", true);
    } else if (type == "Digits" && s.value("individual_digits", false)) {
      digits = true;
    } else if (type == "Split" && s.contains("pattern") && s["pattern"].contains("Regex")) {
      split = pre_from_regex(s["pattern"]["Regex"].get<std::string>());
      if (!split)
        throw FormatError(fmt::format("{}: pre_tokenizer Split regex '{}' is not supported", file,
                                      s["pattern"]["Regex"].get<std::string>()));
    } else {
      throw FormatError(fmt::format("{}: pre_tokenizer step '{}' is not supported", file, type));
    }
  }
  if (!byte_level)
    throw FormatError(
        fmt::format("{}: only byte-level BPE tokenizers are supported (no ByteLevel "
                    "pre_tokenizer)",
                    file));
  if (split && !byte_regex && !digits) return *split;
  if (!split && byte_regex) return digits ? PreTokenizer::kSmollm : PreTokenizer::kGpt2;
  throw FormatError(fmt::format("{}: unsupported pre_tokenizer combination", file));
}

// Token text of a tokenizer_config.json entry: a string or an AddedToken object.
std::optional<std::string> token_text_of(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

// Whether the post-processor prepends `bos` (TemplateProcessing, possibly inside a Sequence).
bool post_processor_adds(const json& pp, const std::string& bos) {
  if (!pp.is_object()) return false;
  if (pp.value("type", "") == "Sequence") {
    for (const json& p : pp.value("processors", std::vector<json>{}))
      if (post_processor_adds(p, bos)) return true;
    return false;
  }
  if (pp.value("type", "") != "TemplateProcessing" || !pp.contains("single")) return false;
  const json& single = pp["single"];
  return single.is_array() && !single.empty() && single[0].contains("SpecialToken") &&
         single[0]["SpecialToken"].value("id", "") == bos;
}

// The two sides of merges[rank]: "a b" (older files) or ["a", "b"] (tokenizers >= 0.20).
std::pair<std::string, std::string> merge_pair(const json& e, size_t rank,
                                               const std::string& file) {
  if (e.is_string()) {
    const std::string& s = e.get_ref<const std::string&>();
    const size_t sp = s.find(' ', 1);
    if (sp != std::string::npos) return {s.substr(0, sp), s.substr(sp + 1)};
  } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
    return {e[0].get<std::string>(), e[1].get<std::string>()};
  }
  throw FormatError(fmt::format("{}: merges[{}] is neither \"a b\" nor [a, b]", file, rank));
}

// SentencePiece-converted BPE (Gemma, LLaMA 2): no pre-tokenizer, "▁" pieces, <0xNN> fallback.
bool is_spm_style(const json& j, const json& m) {
  const bool no_pre = !j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null();
  return no_pre && m.value("byte_fallback", false);
}

// Whether a normalizer prepends "▁" (LLaMA 2 style dummy prefix).
bool normalizer_prepends(const json& n) {
  if (!n.is_object()) return false;
  if (n.value("type", "") == "Prepend") return true;
  for (const json& c : n.value("normalizers", std::vector<json>{}))
    if (normalizer_prepends(c)) return true;
  return false;
}

}  // namespace

// A mistyped value anywhere (added_tokens entries, ids, merges) surfaces as a json type_error; it
// becomes a FormatError naming the file.
Tokenizer Tokenizer::from_hf_json(const std::string& path, int32_t pad_to) try {
  namespace fs = std::filesystem;
  const json j = *read_json(path, false);
  const json& m = j.contains("model") ? j["model"] : json();
  if (!m.is_object() || m.value("type", "BPE") != "BPE" || !m.contains("vocab") ||
      !m["vocab"].is_object() || !m.contains("merges") || !m["merges"].is_array())
    throw FormatError(fmt::format("{}: model must be a BPE with 'vocab' and 'merges'", path));
  Tokenizer t;
  const bool spm = is_spm_style(j, m);
  t.model_ = spm ? TokenizerModel::kSpm : TokenizerModel::kBpe;
  if (!spm) t.pre_ = pre_from_json(path, j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json());
  t.ignore_merges_ = m.value("ignore_merges", false);
  t.add_space_prefix_ =
      spm && normalizer_prepends(j.contains("normalizer") ? j["normalizer"] : json());
  const auto bad = [&](const std::string& what) {
    return FormatError(fmt::format("{}: {}", path, what));
  };
  const auto put = [&](int64_t id, std::string text, TokenType type) {
    if (id < 0 || id > (int64_t{1} << 24)) throw bad(fmt::format("token id {} out of range", id));
    if (id >= static_cast<int64_t>(t.text_.size())) {
      t.text_.resize(static_cast<size_t>(id) + 1);
      t.types_.resize(static_cast<size_t>(id) + 1, TokenType::kUnused);
    }
    t.text_[id] = std::move(text);
    t.types_[id] = type;
  };
  for (const auto& [text, id] : m["vocab"].items()) {
    auto raw = spm ? std::optional<std::string>(text) : gpt2_unmap_bytes(text);
    if (!raw || !id.is_number_integer())
      throw bad(fmt::format("vocab entry '{}' is malformed", text));
    const bool byte =
        spm && raw->size() == 6 && raw->compare(0, 3, "<0x") == 0 && raw->back() == '>';
    put(id.get<int64_t>(), std::move(*raw), byte ? TokenType::kByte : TokenType::kNormal);
  }
  for (const json& a : j.value("added_tokens", std::vector<json>{})) {
    if (!a.contains("id") || !a.contains("content"))
      throw bad("added_tokens entry lacks id/content");
    put(a["id"].get<int64_t>(), a["content"].get<std::string>(),
        a.value("special", false) ? TokenType::kControl : TokenType::kUserDefined);
  }
  if (pad_to > 0 && static_cast<int32_t>(t.text_.size()) > pad_to)
    throw bad(
        fmt::format("{} tokens, more than the model's vocab_size {}", t.text_.size(), pad_to));
  for (size_t id = 0; id < t.text_.size() || static_cast<int32_t>(id) < pad_to; ++id) {
    if (id >= t.text_.size()) put(static_cast<int64_t>(id), "", TokenType::kUnused);
    if (t.types_[id] == TokenType::kUnused) t.text_[id] = fmt::format("<unused_id_{}>", id);
  }

  // Special tokens: tokenizer_config.json, then config.json, then the post-processor.
  const fs::path dir = fs::path(path).parent_path();
  const auto tc = read_json(dir / "tokenizer_config.json", true).value_or(json::object());
  const auto cfg = read_json(dir / "config.json", true).value_or(json::object());
  const auto n = static_cast<int32_t>(t.text_.size());
  const auto id_of_key = [&](const char* text_key, const char* id_key) -> int32_t {
    if (tc.contains(text_key)) {  // authoritative, null included
      const auto s = token_text_of(tc[text_key]);
      if (!s) return -1;
      for (int32_t id = 0; id < n; ++id)
        if (t.text_[id] == *s) return id;
      throw bad(fmt::format("tokenizer_config.json {} '{}' is not a token", text_key, *s));
    }
    json v = cfg.contains(id_key) ? cfg[id_key] : json();
    if (v.is_array() && !v.empty()) v = v[0];
    if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < n)
      return v.get<int32_t>();
    return -1;
  };
  t.bos_ = id_of_key("bos_token", "bos_token_id");
  t.eos_ = id_of_key("eos_token", "eos_token_id");
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean())
    t.add_bos_ = tc["add_bos_token"].get<bool>();
  else
    t.add_bos_ = t.bos_ >= 0 && j.contains("post_processor") &&
                 post_processor_adds(j["post_processor"], t.text_[t.bos_]);
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean())
    t.add_eos_ = tc["add_eos_token"].get<bool>();
  if (spm) {
    // SPM merges the adjacent pair whose concatenation scores highest: score = -rank of the
    // first merge producing the piece reproduces the BPE merge order.
    std::unordered_map<std::string, int32_t> id_of;
    for (int32_t id = 0; id < n; ++id)
      if (t.types_[id] == TokenType::kNormal) id_of.emplace(t.text_[id], id);
    const auto n_merges = static_cast<float>(m["merges"].size());
    t.scores_.assign(t.text_.size(), -n_merges - 1.0f);
    for (size_t rank = m["merges"].size(); rank-- > 0;) {
      const auto [l, r] = merge_pair(m["merges"][rank], rank, path);
      const auto it = id_of.find(l + r);
      if (it != id_of.end()) t.scores_[it->second] = -static_cast<float>(rank);
    }
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      const auto it = std::find(t.text_.begin(), t.text_.end(), m["unk_token"].get<std::string>());
      if (it != t.text_.end()) t.unk_ = static_cast<int32_t>(it - t.text_.begin());
    }
    t.finalize();
    return t;
  }
  t.finalize();

  t.merge_rank_.reserve(m["merges"].size());
  for (size_t rank = 0; rank < m["merges"].size(); ++rank) {
    const auto [l, r] = merge_pair(m["merges"][rank], rank, path);
    const auto left = gpt2_unmap_bytes(l), right = gpt2_unmap_bytes(r);
    if (!left || !right) throw bad(fmt::format("merges[{}] has non-byte-level text", rank));
    const auto li = t.piece_to_id_.find(*left), ri = t.piece_to_id_.find(*right);
    if (li == t.piece_to_id_.end() || ri == t.piece_to_id_.end()) continue;  // unusable merge
    const uint64_t key = (uint64_t(uint32_t(li->second)) << 32) | uint32_t(ri->second);
    t.merge_rank_.emplace(key, static_cast<int32_t>(rank));
  }
  return t;
} catch (const json::exception& e) {
  throw FormatError(fmt::format("{}: malformed tokenizer: {}", path, e.what()));
}

}  // namespace kvz
