// KVzip chat templates per model family (ALGORITHMS.md 6.6): the system prefix kept forever, the
// postfix that closes the user turn and opens the answer, and the stop tokens (model/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvz {

class Tokenizer;

enum class TemplateFamily { kLlama3, kChatml, kQwen3, kGemma3, kPlain };

struct ChatTemplate {
  TemplateFamily family = TemplateFamily::kPlain;
  std::string prefix;   // chat header + system message + open user turn
  std::string postfix;  // end of user turn + assistant header
  std::vector<int32_t> stop_ids;
};

// Instruction lines appended to the prefix (ALGORITHMS.md 6.6).
inline constexpr const char* kInstructionQa =
    "Given the context, answer to the following question or request without explanation.\n\n";
inline constexpr const char* kInstructionReasoning =
    "Given the context, answer to the following reasoning question.\n\n";

// Picks the format from the vocabulary's special tokens and the quirks of the model family named
// arch_name (model/families; an unknown name has none).
ChatTemplate chat_template_for(const Tokenizer& tok, const std::string& arch_name);

}  // namespace kvz
