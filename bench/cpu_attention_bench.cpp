// BM_cpu_attention / BM_cpu_attn_score: the CPU backend's attention (runtime/cpu/attention_fast.h)
// on host tensors with SmolLM2-135M's heads (9 query heads, 3 KV heads, head_dim 64), f16 K/V.
// BM_cpu_attention args: n_q (new queries), cached (rows before them), threads (0: the default),
// SIMD level (0: the best; i: element i of cpu::simd_targets()). BM_cpu_attn_score args: n_q,
// chunk (t1 - t0), threads, level, the README demo's KVzip scoring layout (a sink, the chunk,
// then the queries' own rows). Counters: cpu_s (CPU seconds of all threads per call) and
// gfma_per_cpu_s (multiply-adds of the visible query x key pairs per CPU second: QK^T and P x V
// for attention, the two QK^T passes for scoring), to set against the machine's FMA ceiling.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdint>
#include <vector>

#include "runtime/args/paged_attention.h"
#include "runtime/cpu/attention_fast.h"
#include "runtime/cpu/half.h"
#include "runtime/cpu/qdot.h"

namespace kvz {
namespace {

constexpr int64_t kHeads = 9, kKvHeads = 3, kHd = 64;

double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

template <class T>
Tensor host(std::vector<T>& v, DType t, std::initializer_list<int64_t> shape) {
  return Tensor(BufferView{0, 0, v.size() * sizeof(T), reinterpret_cast<std::byte*>(v.data())}, t,
                shape);
}

// A paged cache of `rows` rows per KV head, head h's blocks consecutive in the pool; positions
// equal row indices; K/V and q pseudo-random in [-1, 1].
struct HostProblem {
  int64_t rows, max_blocks;
  std::vector<uint16_t> k, v;
  std::vector<int32_t> pos, table, lens, q_pos;
  std::vector<float> q, out;
  HostProblem(int64_t rows_, int64_t n_q) : rows(rows_), max_blocks((rows_ + 31) / 32) {
    const int64_t slots = kKvHeads * max_blocks * 32;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    const auto next = [&] {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      return float(int64_t(s % 2001) - 1000) * 1e-3f;
    };
    k.resize(slots * kHd), v.resize(slots * kHd);
    for (auto& x : k) x = cpu::f32_to_f16(next());
    for (auto& x : v) x = cpu::f32_to_f16(next());
    pos.resize(slots);
    for (int64_t i = 0; i < slots; ++i) pos[i] = int32_t(i % (max_blocks * 32));
    for (int64_t i = 0; i < kKvHeads * max_blocks; ++i) table.push_back(int32_t(i));
    lens.assign(kKvHeads, int32_t(rows));
    q.resize(n_q * kHeads * kHd), out.resize(q.size());
    for (auto& x : q) x = next();
    for (int64_t i = 0; i < n_q; ++i) q_pos.push_back(int32_t(rows - n_q + i));
  }
};

// Forces SIMD level state.range(arg) for the benchmark's lifetime; false: no such level.
bool force_level(benchmark::State& state, int arg) {
  const std::vector<int64_t> levels = cpu::simd_targets();
  const auto i = size_t(state.range(arg));
  if (i >= levels.size()) return false;
  cpu::simd_force_target(i > 0 ? levels[i] : 0);
  state.SetLabel(cpu::simd_name(levels[i]));
  return true;
}

void report(benchmark::State& state, double cpu_s, double fma) {
  const double it = double(state.iterations());
  state.counters["cpu_s"] = cpu_s / it;
  state.counters["gfma_per_cpu_s"] = fma * it / cpu_s * 1e-9;
}

void BM_cpu_attention(benchmark::State& state) {
  const int64_t n_q = state.range(0), cached = state.range(1);
  if (!force_level(state, 3)) return state.SkipWithError("no such SIMD level");
  HostProblem p(cached + n_q, n_q);
  PagedAttentionArgs a;
  a.q = host(p.q, DType::kF32, {n_q, kHeads, kHd});
  a.q_pos = host(p.q_pos, DType::kI32, {n_q});
  const int64_t nb = kKvHeads * p.max_blocks;
  a.k_pool = host(p.k, DType::kF16, {nb, 32, kHd});
  a.v_pool = host(p.v, DType::kF16, {nb, 32, kHd});
  a.pos_pool = host(p.pos, DType::kI32, {nb, 32});
  a.block_table = host(p.table, DType::kI32, {kKvHeads, p.max_blocks});
  a.lens = host(p.lens, DType::kI32, {kKvHeads});
  a.out = host(p.out, DType::kF32, {n_q, kHeads, kHd});
  a.scale = 0.125f;
  a.rows_sorted = true;
  const double cpu0 = process_cpu_s();
  for (auto _ : state) {
    cpu::paged_attention_fast(a, int(state.range(2)));
    benchmark::DoNotOptimize(p.out.data());
  }
  const double cpu_s = process_cpu_s() - cpu0;
  cpu::simd_force_target(0);
  // Query i sees cached + i + 1 rows; QK^T and P x V take head_dim multiply-adds each per pair.
  const double pairs = double(n_q) * double(cached) + double(n_q) * double(n_q + 1) / 2;
  report(state, cpu_s, pairs * double(kHeads) * double(kHd) * 2);
}

void BM_cpu_attn_score(benchmark::State& state) {
  const int64_t n_q = state.range(0), chunk = state.range(1), n_sink = 4;
  if (!force_level(state, 3)) return state.SkipWithError("no such SIMD level");
  const int64_t s0 = n_sink + chunk;
  HostProblem p(s0 + n_q, n_q);
  std::vector<float> score(kKvHeads * chunk);
  AttnScoreArgs a;
  a.q = host(p.q, DType::kF32, {n_q, kHeads, kHd});
  const int64_t nb = kKvHeads * p.max_blocks;
  a.k_pool = host(p.k, DType::kF16, {nb, 32, kHd});
  a.block_table = host(p.table, DType::kI32, {kKvHeads, p.max_blocks});
  a.score = host(score, DType::kF32, {kKvHeads, chunk});
  a.n_sink = int(n_sink), a.t0 = int(n_sink), a.t1 = int(s0), a.s0 = int(s0);
  a.scale = 0.125f;
  const double cpu0 = process_cpu_s();
  for (auto _ : state) {
    cpu::attn_score_fast(a, int(state.range(2)));
    benchmark::DoNotOptimize(score.data());
  }
  const double cpu_s = process_cpu_s() - cpu0;
  cpu::simd_force_target(0);
  // Pass 1: every query against the sink, the chunk and its own prefix; pass 2: against the chunk.
  const double pairs = double(n_q) * double(n_sink + 2 * chunk) + double(n_q) * double(n_q + 1) / 2;
  report(state, cpu_s, pairs * double(kHeads) * double(kHd));
}

void AttentionShapes(benchmark::internal::Benchmark* b) {
  // The README demo's prefill: its last 512-token chunk after 1,536 rows; one decode step.
  b->Args({512, 1536, 0, 0})->Args({1, 2113, 0, 0});
  // The demo's scoring forward pass: the repeated 2,000-token chunk after the 2,114-token context.
  b->Args({2020, 2114, 0, 0});
  for (int64_t level = 1; level < int64_t(cpu::simd_targets().size()); ++level)
    b->Args({512, 1536, 0, level});
  b->ArgNames({"n_q", "cached", "threads", "level"});
}

void ScoreShapes(benchmark::internal::Benchmark* b) {
  b->Args({2020, 2000, 0, 0});
  b->ArgNames({"n_q", "chunk", "threads", "level"});
}

BENCHMARK(BM_cpu_attention)->Apply(AttentionShapes)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_cpu_attn_score)->Apply(ScoreShapes)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kvz
