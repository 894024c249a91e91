// `kvzip eval --dump-samples FILE [--dump-scores DIR]` (tools/): every sample exactly as the eval
// feeds it, as token ids, so that a reference implementation (tools/kvpress_reference.py) sees
// the same tokens; optionally this engine's KVzip pair scores of each sample beside it.
#pragma once

#include <string>
#include <vector>

#include "model/session.h"
#include "tools/eval_tasks.h"

namespace kvz::cli {

// A query's prompt tokens: the query turn, then the task's answer prefix if it has one.
std::vector<int32_t> query_prompt(const Session& s, const EvalQuery& q);

// The metric's name in the dump ("any_normalized", "all_contained", "any_contained",
// "gsm_number").
const char* metric_name(Metric m);

struct DumpOptions {
  std::string samples_path;  // JSON lines, one sample a line (format kvz-eval-sample/1)
  std::string scores_dir;    // if set: DIR/<index>.f32, f32 [n_layers, n_kv_heads, n_context]
  std::string task;
  int chunk = 2000;        // KVzip scoring chunk (context tokens)
  int max_new_tokens = 0;  // 0: the task's default
};

// Writes the dump (and the scores, which prefill and score every sample). Throws InputError when
// a file cannot be written.
void dump_samples(const Model& model, const std::vector<EvalSample>& samples, const DumpOptions& o);

}  // namespace kvz::cli
