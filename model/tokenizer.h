// Tokenizers (model/): byte-level BPE (GPT-2 merges or tiktoken ranks) and SentencePiece-style
// BPE over scores (LLaMA 1/2, Gemma, llama2.c), built from a GGUF vocabulary, a tiktoken rank
// file or a llama2.c tokenizer.bin. Encoding follows llama.cpp's llama-vocab.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kvz {

class GgufReader;
class Pretokenizer;

// Token attribute, numbered as GGUF's tokenizer.ggml.token_type.
enum class TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class TokenizerModel : uint8_t {
  kBpe,  // byte-level BPE (GGUF "gpt2", tiktoken): tokens are raw byte strings
  kSpm,  // SentencePiece-style BPE merging by piece score, "▁" for space, <0xNN> byte fallback
};

// Pre-tokenizer regex set of a byte-level BPE vocabulary (GGUF tokenizer.ggml.pre).
enum class PreTokenizer : uint8_t {
  kGpt2,    // "default", "gpt-2": GPT-2's regex
  kLlama3,  // "llama-bpe": LLaMA 3 (digits in groups of up to 3)
  kQwen2,   // "qwen2": like LLaMA 3 but single digits
  kSmollm,  // "smollm": every digit split off first (\p{N}), then GPT-2's regex
};

// What a tiktoken rank file does not contain: the pre-tokenizer and the special tokens, which
// get ids n_ranks, n_ranks + 1, ... in order.
struct TiktokenSpec {
  PreTokenizer pre = PreTokenizer::kGpt2;
  std::vector<std::string> specials;
  std::string bos, eos, eot;  // texts of specials; empty = none
  bool add_bos = false;
};
TiktokenSpec tiktoken_spec_llama3();  // 256 specials, bos <|begin_of_text|>, eot <|eot_id|>
TiktokenSpec tiktoken_spec_qwen2();   // Qwen2.5 specials from <|endoftext|> (151643), no bos

class Tokenizer {
 public:
  // Reads tokenizer.ggml.{model,pre,tokens,scores,token_type,merges,*_token_id,add_*}.
  // Throws FormatError if keys are missing or inconsistent, or model/pre is unsupported.
  static Tokenizer from_gguf(const GgufReader& gguf);
  // A tiktoken rank file: lines "<base64 token bytes> <rank>", ranks 0..n-1 in order
  // (LLaMA 3 tokenizer.model, qwen.tiktoken). Throws InputError/FormatError.
  static Tokenizer from_tiktoken(const std::string& path, const TiktokenSpec& spec);
  // llama2.c tokenizer.bin: i32 max_token_length, then per token f32 score, i32 len, bytes.
  // Ids 0/1/2 are <unk>/<s>/</s>, 3..258 byte tokens; the result is an SPM tokenizer.
  static Tokenizer from_llama2c(const std::string& path);
  // A Hugging Face tokenizer.json holding a byte-level BPE (model.vocab, model.merges as "a b" or
  // [a, b], added_tokens, a ByteLevel / Split-regex / Digits pre-tokenizer matched to a
  // PreTokenizer), or a SentencePiece-converted BPE (no pre-tokenizer, byte_fallback, "▁"
  // pieces; Gemma, LLaMA 2), which becomes an SPM tokenizer scoring pieces by merge rank. BOS/EOS
  // and add_bos come from tokenizer_config.json and config.json beside it when present, else from
  // the post-processor. Ids up to `pad_to` that the file lacks become unused tokens (models pad
  // their embedding). Throws InputError/FormatError naming the file.
  static Tokenizer from_hf_json(const std::string& path, int32_t pad_to = 0);
  // A stand-in vocabulary for synthetic models: <unk> <s> </s>, 256 byte tokens, then filler
  // pieces up to n_vocab (SPM with byte fallback; any text encodes).
  static Tokenizer synthetic(int32_t n_vocab);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_special: prepend BOS / append EOS as the vocabulary asks. parse_special: control tokens
  // written in `text` (e.g. "<|eot_id|>") become their ids instead of being split as text
  // (user-defined tokens always do, as in llama.cpp). Invalid UTF-8 is encoded byte-wise.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false,
                              bool parse_special = false) const;
  // Concatenated token_piece()s. SPM drops the dummy-prefix space of the first non-BOS token.
  // skip_special drops control tokens. Throws InputError on ids outside [0, n_vocab).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // The bytes token `id` stands for: raw bytes (BPE), "▁" -> " " and <0xNN> -> byte (SPM);
  // control tokens give their text. Throws InputError if id is out of range.
  std::string token_piece(int32_t id) const;
  // The vocabulary entry as stored (BPE: raw bytes; SPM: with "▁"). Throws like token_piece.
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;
  // Id of an exact vocabulary entry (as token_text gives it), or -1.
  int32_t find_token(std::string_view text) const;

  int32_t n_vocab() const { return static_cast<int32_t>(text_.size()); }
  TokenizerModel model() const { return model_; }
  int32_t bos_id() const { return bos_; }  // -1 when the vocabulary has none
  int32_t eos_id() const { return eos_; }
  int32_t eot_id() const { return eot_; }
  bool add_bos() const { return add_bos_; }
  // End of generation: eos, eot, eom, and control tokens such as <|eot_id|>, <|im_end|>,
  // <|endoftext|>, <end_of_turn>.
  bool is_eog(int32_t id) const;

 private:
  Tokenizer();
  void finalize();  // builds lookup tables once text_/types_/scores_ are filled
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
  void check_id(int32_t id) const;

  TokenizerModel model_ = TokenizerModel::kBpe;
  PreTokenizer pre_ = PreTokenizer::kGpt2;
  std::vector<std::string> text_;  // [n_vocab]
  std::vector<TokenType> types_;   // [n_vocab]
  std::vector<float> scores_;      // [n_vocab], SPM merge priority (higher merges first)
  // Byte-level BPE: rank of merging the pair (left id << 32 | right id), from GPT-2 merges.
  // Empty with rank_is_id_: tiktoken, where a pair's rank is the id of its concatenation.
  std::unordered_map<uint64_t, int32_t> merge_rank_;
  bool rank_is_id_ = false;
  bool ignore_merges_ = false;  // a pre-token that is itself a token is emitted whole
  std::unordered_map<std::string, int32_t> piece_to_id_;  // mergeable entries only
  std::vector<int32_t> byte_to_id_;                       // [256], -1 if absent
  std::vector<int32_t> specials_;  // control/user-defined/unknown ids, longest text first
  std::vector<int32_t> eog_ids_;
  std::unique_ptr<Pretokenizer> pretok_;
  int32_t bos_ = -1, eos_ = -1, eot_ = -1, eom_ = -1, unk_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = true;
};

}  // namespace kvz
