// KVzip's per-family templates (ALGORITHMS.md 6.6; KVzip repo model/template.py) (model/).
#include "model/chat_template.h"

#include "model/families/family.h"
#include "model/tokenizer.h"

namespace kvz {

ChatTemplate chat_template_for(const Tokenizer& tok, const std::string& arch_name) {
  ChatTemplate t;
  auto has = [&](const char* s) { return tok.find_token(s) >= 0; };
  if (has("<|start_header_id|>") && has("<|eot_id|>")) {
    t.family = TemplateFamily::kLlama3;
    t.prefix =
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
        "assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n";
    t.postfix = "\n\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  } else if (has("<start_of_turn>") && has("<end_of_turn>")) {
    t.family = TemplateFamily::kGemma3;
    t.prefix = "<bos><start_of_turn>user\nYou are a helpful assistant.\n\n";
    t.postfix = "<end_of_turn>\n<start_of_turn>model\n";
  } else if (has("<|im_start|>") && has("<|im_end|>")) {
    const ModelFamily* f = find_family(arch_name);
    const bool think = f && f->chat_think_block && has("<think>");
    t.family = think ? TemplateFamily::kQwen3 : TemplateFamily::kChatml;
    t.prefix = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n";
    t.postfix = "<|im_end|>\n<|im_start|>assistant\n";
    if (think) t.postfix += "<think>\n\n</think>\n\n";
  } else {
    t.family = TemplateFamily::kPlain;
    t.prefix = tok.bos_id() >= 0 ? tok.token_text(tok.bos_id()) : "";
    t.postfix = "\n\nAnswer: ";
  }
  for (int32_t id = 0; id < tok.n_vocab(); ++id)
    if (tok.is_eog(id)) t.stop_ids.push_back(id);
  return t;
}

}  // namespace kvz
