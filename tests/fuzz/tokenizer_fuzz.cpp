// libFuzzer target for the tokenizers and chat templates on arbitrary bytes (tests/fuzz/): a
// byte-level BPE (Hugging Face tokenizer.json) and an SPM (llama2.c) vocabulary encode the input
// as text, with and without special-token parsing, wrapped in the chat template, and decode it
// back. Nothing may crash, abort or throw anything but kvz::Error.
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const kvz::Tokenizer bpe =
      kvz::Tokenizer::from_hf_json(KVZ_FUZZ_DATA "/hf/llama3/tokenizer.json", 513);
  static const kvz::Tokenizer spm =
      kvz::Tokenizer::from_llama2c(KVZ_FUZZ_DATA "/stories260K/tok512.bin");
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const kvz::Tokenizer* t : {&bpe, &spm}) {
    try {
      const kvz::ChatTemplate ct = kvz::chat_template_for(*t, "llama");
      for (bool special : {false, true}) {
        const auto ids = t->encode(ct.prefix + text + ct.postfix, true, special);
        (void)t->decode(ids, special);
        for (int32_t id : ids) (void)t->token_piece(id);
      }
    } catch (const kvz::Error&) {
    }
  }
  return 0;
}
