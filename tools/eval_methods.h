// Scores of every pruning method of kvzip/baselines.h for one prefilled session, shared by
// `kvzip eval` and `kvzip run --method` (tools/): the first query's observation pass (query-aware
// baselines), the prefill's query statistics (Expected Attention) and the budget level of a method.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvzip/baselines.h"
#include "kvzip/expected_attention.h"
#include "model/session.h"

namespace kvz::cli {

// Everything the query-aware scorers need from one pass of `window` over the full cache.
std::vector<ObservedLayer> observe_first_query(Session& s, const std::vector<int32_t>& window);

// Each layer's RoPE as the forward applies it (sliding layers: local base, no scaling).
std::vector<RopeSpec> rope_specs(const Model& model);

// Prefills the sample's context; with `stats`, every prefill query also feeds its statistics.
void prefill(Session& s, const std::string& context, QueryStats* stats);

// The pair scores of method `m` (kvzip: `kvzip`, computed by the caller; query-aware ones from
// `obs`; expected_attention from `stats`; random from `seed`).
Scores method_scores(Session& s, const MethodInfo& m, const Scores& kvzip,
                     const std::vector<ObservedLayer>& obs, const QueryStats* stats, uint64_t seed);

// How a method's budget is applied (Session::prune).
PruneLevel prune_level(Budget b);

}  // namespace kvz::cli
