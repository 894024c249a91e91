// RULER-style synthetic tasks for `kvzip eval` (tools/), generated in our own code as
// tools/data/eval/RULER_TASKS.md describes: the NIAH family (one generator, one configuration
// row per task), variable tracking, common and frequent words extraction, and multi-document QA
// over the bundled SQuAD paragraphs. Samples are deterministic for a given seed and tokenizer;
// every sample is fitted to --length tokens with the model's tokenizer, as RULER does.
#pragma once

#include <string_view>
#include <vector>

#include "tools/eval_tasks.h"

namespace kvz::cli {

// The RULER-style task names, in the order the help text lists them.
const std::vector<std::string_view>& ruler_task_names();
bool is_ruler_task(std::string_view task);

// Builds the samples of a RULER-style task (o.task in ruler_task_names()). Throws InputError when
// --length is too short for the task's fixed text or the bundled data cannot be read.
std::vector<EvalSample> make_ruler_task(const TaskOptions& o, const Tokenizer& tok);

// Tokens a RULER-style task lets the model generate per query (0 for any other task).
int ruler_max_new_tokens(std::string_view task);

}  // namespace kvz::cli
