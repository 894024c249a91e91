// BM_cpu_stream_read: the host's streaming read bandwidth through the CPU backend's thread pool,
// the ceiling for decode on the CPU (each token reads every weight once). Sums 1 GiB of 64-bit
// words (far above any cache) in 1 MiB chunks pulled by Arg(0) threads (0: the default count).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "runtime/cpu/parallel.h"
#include "runtime/cpu/simd_clones.h"

namespace {

KVZ_CPU_CLONES uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t acc[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int e = 0; e < 8; ++e) acc[e] += p[i + e];
  uint64_t s = 0;
  for (uint64_t a : acc) s += a;
  return s;
}

void BM_cpu_stream_read(benchmark::State& state) {
  constexpr size_t kBytes = size_t{1} << 30, kChunk = size_t{1} << 20;
  const int threads = state.range(0) > 0 ? int(state.range(0)) : kvz::cpu::default_threads();
  std::vector<uint64_t> buf(kBytes / 8);
  std::memset(buf.data(), 1, kBytes);  // touch every page before timing
  std::vector<uint64_t> part(size_t(threads), 0);
  for (auto _ : state) {
    kvz::cpu::parallel_for(int64_t(kBytes / kChunk), threads, [&](int w, int64_t c) {
      part[size_t(w)] += sum_words(buf.data() + size_t(c) * (kChunk / 8), kChunk / 8);
    });
    benchmark::DoNotOptimize(part.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kBytes));
  state.counters["threads"] = threads;
}
BENCHMARK(BM_cpu_stream_read)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
