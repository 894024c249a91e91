// Evaluation tasks for `kvzip eval` (tools/): SQuAD multi-query, needle-in-a-haystack with several
// needles, SCBench-style key-value retrieval, the RULER-style tasks (tools/eval_ruler.h,
// tools/data/eval/RULER_TASKS.md) and GSM8K with the problem as context, built from the bundled
// data in tools/data/eval/, and their metrics (ALGORITHMS.md 5.2, 5.4). Samples are deterministic
// for a given seed and tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer.h"

namespace kvz::cli {

// How a prediction is scored against its answers (ALGORITHMS.md 5.2, 5.4).
enum class Metric {
  kAnyNormalized,  // 1 if any normalised gold answer is contained in the normalised prediction
  kAllContained,   // RULER string_match_all: fraction of the answers contained (case-insensitive)
  kAnyContained,   // RULER string_match_part: 1 if any answer is contained (case-insensitive)
  kGsmNumber,      // KVzip: 1 if the gold string is contained in the (lowercased) text after the
                   // last "the answer is " (the whole prediction when the phrase is missing)
};

struct EvalQuery {
  std::string question;              // the query text given to Session::generate
  std::vector<std::string> answers;  // gold answers
  std::string answer_prefix;         // start of the answer, fed after the turn template (RULER)
  Metric metric = Metric::kAnyNormalized;
};

struct EvalSample {
  std::string id, context;
  std::vector<EvalQuery> queries;  // the first one is what query-aware methods compress with
  bool reasoning = false;          // use the reasoning instruction (GSM8K, ALGORITHMS.md 6.6)
};

struct TaskOptions {
  std::string task;    // squad | niah | kv | ruler_* (eval_ruler.h) | gsm8k | samples
  int num = 0;         // samples (0 = the task's default)
  int64_t length = 0;  // niah/kv/ruler context tokens (0 = the task's default)
  int queries = 0;     // niah needles / kv queried keys / ruler queries per sample (0 = default)
  int max_new_tokens = 0;  // RULER-style tasks reserve this many (0 = task_max_new_tokens)
  uint64_t seed = 1;
  bool vary_haystack = false;  // niah: sample s's haystack starts s / num into the essay
  std::string data_dir;        // tools/data/eval
  std::string samples_file;    // task "samples": the user's JSON lines (read_samples_jsonl)
};

// Builds the samples. Throws InputError on an unknown task or unreadable data.
std::vector<EvalSample> make_task(const TaskOptions& o, const Tokenizer& tok);

// A user's samples, one JSON object a line: {"id": str (optional), "context": str, "queries":
// [str], "answers": [str | [str]]}, answer i belonging to query i (a list: any of them counts),
// metric kAnyNormalized. At most `num` samples (0 = all); blank lines are skipped. Throws
// InputError naming the line on anything else.
std::vector<EvalSample> read_samples_jsonl(const std::string& path, int num = 0);

// Tokens each task lets the model generate per query.
int task_max_new_tokens(std::string_view task);

// SQuAD normalisation (ALGORITHMS.md 5.2): lowercase, punctuation removed, articles dropped,
// "zero".."nine" mapped to digits, whitespace collapsed.
std::string normalize_answer(std::string_view s);
// 1 if any normalised gold answer is a substring of the normalised prediction.
bool answer_matches(std::string_view prediction, const std::vector<std::string>& answers);
// The query's metric applied to a prediction: a score in [0, 1].
double score_prediction(const EvalQuery& q, std::string_view prediction);
// The final answer of a GSM8K worked solution: the text after the last "#### ", stripped; empty if
// there is none.
std::string gsm8k_gold(std::string_view answer);

}  // namespace kvz::cli
