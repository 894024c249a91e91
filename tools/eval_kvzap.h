// KVzap in `kvzip eval` (tools/): methods kvzap_linear / kvzap_mlp. KVzap is threshold-based, so
// the kept fraction it achieves is an outcome, not a target (kvpress reports it that way). Mapping
// used here:
//   --ratios r1,r2,..  for each r one threshold tau_r shared by all samples, chosen on the sample
//                      set so that the pooled kept fraction of context pairs equals r (or comes as
//                      close as the always-kept window allows); every row records the requested r
//                      as its key and the fraction its sample actually kept, which varies with the
//                      input as KVzap's does.
//   --kvzap-threshold T  one fixed tau for every sample (KVzap's own knob, e.g. -4); the rows' key
//                      is the pooled kept fraction it achieved (3 digits), added to the table.
// Scores come from a dense prefill (surrogate on every layer's attention-input hidden states) and
// the rule is Session::prune_threshold: a context pair is evicted iff its predicted log-score is
// below tau and it is older than the last `window` tokens; the prefix is kept.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvzip/kvzap.h"
#include "model/model.h"
#include "tools/eval_tasks.h"

namespace kvz::cli {

bool is_kvzap_method(std::string_view name);

struct KvzapEvalOptions {
  std::string weights_dir;  // holds MODEL_STEM.{linear,mlp}.kvzap
  std::string model_stem;   // file name of the model without extension
  std::optional<float> threshold;
  int window = 128;
};

struct KvzapCell {
  double key = 0;  // the row's ratio key
  float threshold = 0;
};

class KvzapEval {
 public:
  // Loads the surrogates and prefills every sample once per method to get its scores, then picks
  // the thresholds. Throws InputError / FormatError on missing or mismatched weights files.
  KvzapEval(const Model& m, const std::vector<EvalSample>& samples,
            const std::vector<std::string>& methods, const std::vector<double>& ratios,
            const KvzapEvalOptions& o);
  const std::vector<KvzapCell>& cells(const std::string& method) const;
  const Scores& scores(const std::string& method, int sample) const;
  int window() const { return window_; }
  // Ratio keys of all cells (for the table when a fixed threshold is used).
  std::vector<double> keys() const;

 private:
  struct Method {
    std::vector<Scores> scores;  // [samples]
    std::vector<KvzapCell> cells;
  };
  std::map<std::string, Method> methods_;
  int window_ = 128;
};

}  // namespace kvz::cli
