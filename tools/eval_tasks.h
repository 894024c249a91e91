// Evaluation tasks for `kvzip eval` (tools/): SQuAD multi-query, needle-in-a-haystack with several
// needles, SCBench-style key-value retrieval, built from the bundled data in tools/data/eval/, and
// their metrics (ALGORITHMS.md 5.2). Samples are deterministic for a given seed and tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer.h"

namespace kvz::cli {

struct EvalQuery {
  std::string question;              // the query text given to Session::generate
  std::vector<std::string> answers;  // gold answers; any one contained in the prediction scores 1
};

struct EvalSample {
  std::string id, context;
  std::vector<EvalQuery> queries;  // the first one is what query-aware methods compress with
};

struct TaskOptions {
  std::string task;    // squad | niah | kv
  int num = 0;         // samples (0 = the task's default)
  int64_t length = 0;  // niah/kv context tokens (0 = the task's default)
  int queries = 0;     // niah needles / kv queried keys per sample (0 = default)
  uint64_t seed = 1;
  std::string data_dir;  // tools/data/eval
};

// Builds the samples. Throws InputError on an unknown task or unreadable data.
std::vector<EvalSample> make_task(const TaskOptions& o, const Tokenizer& tok);

// Tokens each task lets the model generate per query.
int task_max_new_tokens(std::string_view task);

// SQuAD normalisation (ALGORITHMS.md 5.2): lowercase, punctuation removed, articles dropped,
// "zero".."nine" mapped to digits, whitespace collapsed.
std::string normalize_answer(std::string_view s);
// 1 if any normalised gold answer is a substring of the normalised prediction.
bool answer_matches(std::string_view prediction, const std::vector<std::string>& answers);

}  // namespace kvz::cli
