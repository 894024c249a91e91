// BM_cpu_matmul: the CPU backend's matmul (runtime/cpu/matmul_cpu.h) on host tensors, x rows
// rounded to int8 (the CLI's default) against block weights. Args: m (x rows), n (weight rows),
// k, weight type (DType as int), threads (0: the default count), SIMD level (0: the best).
// Counters: s_per_row (wall time per x row: the per-row cost of decode batches and prefill panels),
// cpu_s_per_row (CPU time of all threads per x row) and GB/s of weight bytes.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "runtime/cpu/half.h"
#include "runtime/cpu/matmul_cpu.h"
#include "runtime/cpu/qdot.h"
#include "runtime/device.h"

namespace kvz {
namespace {

// Random codes; every fp16 scale of a block set to a small finite value (byte offsets per type).
std::vector<uint8_t> random_blocks(DType t, int64_t n, int64_t k) {
  std::vector<uint8_t> raw(row_bytes(t, k) * size_t(n));
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i + 8 <= raw.size(); i += 8) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    std::memcpy(&raw[i], &s, 8);
  }
  const size_t bb = size_t(dtype_info(t).block_bytes);
  const uint16_t d = cpu::f32_to_f16(0.01f);
  std::vector<size_t> offs{0};
  if (t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ4_1 || t == DType::kQ5_1)
    offs.push_back(2);
  if (t == DType::kQ6_K) offs = {208};
  for (size_t b = 0; b < raw.size() / bb; ++b)
    for (size_t off : offs) std::memcpy(&raw[b * bb + off], &d, 2);
  return raw;
}

double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

Tensor host_tensor(void* p, size_t bytes, DType t, std::initializer_list<int64_t> shape) {
  return Tensor(BufferView{0, 0, bytes, static_cast<std::byte*>(p)}, t, shape);
}

void BM_cpu_matmul(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const DType t = DType(state.range(3));
  const int threads = int(state.range(4));
  const std::vector<int64_t> levels = cpu::simd_targets();
  if (state.range(5) >= int64_t(levels.size())) return state.SkipWithError("no such SIMD level");
  cpu::simd_force_target(state.range(5) > 0 ? levels[size_t(state.range(5))] : 0);
  state.SetLabel(cpu::simd_name(levels[size_t(state.range(5))]));
  std::vector<uint8_t> w = random_blocks(t, n, k);
  std::vector<float> x(size_t(m * k)), y(size_t(m * n));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 7919 % 2001) - 1000) * 1e-3f;
  MatmulArgs a;
  a.x = host_tensor(x.data(), x.size() * 4, DType::kF32, {m, k});
  a.w = host_tensor(w.data(), w.size(), t, {n, k});
  a.y = host_tensor(y.data(), y.size() * 4, DType::kF32, {m, n});
  const bool was = cpu_int8_activations();
  set_cpu_int8_activations(true);
  const double cpu0 = process_cpu_s();
  for (auto _ : state) {
    cpu::matmul_fast(a, threads);
    benchmark::DoNotOptimize(y.data());
  }
  const double cpu_s = process_cpu_s() - cpu0;
  set_cpu_int8_activations(was);
  cpu::simd_force_target(0);
  // Seconds per x row (shown with an SI prefix: u = microseconds).
  state.counters["s_per_row"] =
      benchmark::Counter(double(state.iterations()) * double(m),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  // CPU seconds (user + sys, every thread) per x row: on a shared machine, less noisy than wall.
  state.counters["cpu_s_per_row"] = cpu_s / (double(state.iterations()) * double(m));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(w.size()));
}

void Shapes(benchmark::internal::Benchmark* b) {
  // LLaMA-3.1-8B's q/o projection (4096 x 4096) and FFN down (4096 x 14336), Q4_K and Q6_K;
  // m = 1 (decode), 4 and 7 (batched decode), 8, 16 and 64 (panel path), 512 (prefill).
  for (DType t : {DType::kQ4_K, DType::kQ6_K})
    for (int64_t m : {1, 4, 7, 8, 16, 64, 512}) b->Args({m, 4096, 4096, int64_t(t), 0, 0});
  b->Args({512, 4096, 14336, int64_t(DType::kQ4_K), 0, 0});
  b->Args({1, 4096, 14336, int64_t(DType::kQ4_K), 0, 0});
  // SmolLM2-135M's FFN up (1536 x 576) in Q4_1 and Q8_0 (the 32-value blocks).
  for (DType t : {DType::kQ4_1, DType::kQ8_0})
    for (int64_t m : {1, 7, 8, 64}) b->Args({m, 1536, 576, int64_t(t), 0, 0});
  // The same prefill shape on every lower SIMD level this CPU runs (level i of simd_targets()).
  for (int64_t level = 1; level < int64_t(cpu::simd_targets().size()); ++level)
    b->Args({512, 4096, 4096, int64_t(DType::kQ4_K), 0, level});
  b->ArgNames({"m", "n", "k", "type", "threads", "level"});
}
BENCHMARK(BM_cpu_matmul)->Apply(Shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kvz
