// Host-side cost of KVzip's pair-level pruning decision (kvzip/pruner.h prune_pair, the exact
// budget rule) at LLaMA-3.1-8B shape (32 layers x 8 KV heads) and 32K context: the `kvzip prune`
// phase of `kvzip bench` before any GPU work. Two score distributions: distinct values, and the
// one a random-weight model produces, where most scores underflow to exactly 0 so that the
// threshold at ratio 0.3 falls inside a tie of millions of pairs.
#include <benchmark/benchmark.h>

#include <random>

#include "kvzip/pruner.h"
#include "kvzip/scores.h"

namespace kvz {
namespace {

constexpr int kLayers = 32, kKvHeads = 8;
constexpr int64_t kCtx = 32768;

Scores make_scores(double zero_fraction) {
  Scores s(kLayers, kKvHeads, kCtx);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& x : s.data) x = u(rng) < zero_fraction ? 0.0f : u(rng);
  return s;
}

void bm_prune(benchmark::State& state, double zero_fraction) {
  const Scores s = make_scores(zero_fraction);
  for (auto _ : state) {
    KeepSet k = prune_pair(s, 0.3, 1, kCtx + 1);
    benchmark::DoNotOptimize(k.n_kept);
  }
}
BENCHMARK_CAPTURE(bm_prune, llama3_8b_32k_distinct, 0.0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_prune, llama3_8b_32k_80pct_zero, 0.8)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kvz
