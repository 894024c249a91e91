// BM_gate_up/<shape>_q4_k/{fused,unfused}: the decode gated MLP's gate and up matvecs and its
// activation (runtime/ops/matvec_gate_up.h) as one dispatch against the three ops it replaces
// (both matvecs side by side, a barrier, the activation), _r<N>: N rows per team of 64,
// LLaMA-3.1-8B and Qwen2.5-7B shapes, x and y rounded to int8 as in the forward pass. GB/s counts
// both weights once (bench/).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "runtime/cpu/dequant.h"
#include "runtime/ops/activation.h"
#include "runtime/ops/matmul.h"
#include "runtime/ops/matvec_gate_up.h"

namespace kvz {
namespace {

struct GateUp {
  std::vector<Buffer> keep;
  MatvecGateUpArgs a;
  GateUp(Device& dev, int64_t n, int64_t k) {
    auto alloc = [&](DType t, std::initializer_list<int64_t> shape, const void* src) {
      return kvz::bench::bench_tensor(dev, keep, t, shape, src);
    };
    std::vector<float> x(static_cast<size_t>(k));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i) * 0.37f);
    // Random Q4_K blocks with d = dmin = 0.01 (finite, moderate outputs).
    std::vector<uint8_t> w(row_bytes(DType::kQ4_K, k) * size_t(n));
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i + 8 <= w.size(); i += 8) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      std::memcpy(&w[i], &s, 8);
    }
    const uint16_t d = cpu::f32_to_f16(0.01f);
    for (size_t b = 0; b < w.size() / 144; ++b)
      for (int off : {0, 2}) std::memcpy(&w[b * 144 + off], &d, 2);
    a.x = alloc(DType::kF32, {1, k}, x.data());
    a.w_gate = alloc(DType::kQ4_K, {n, k}, w.data());
    a.w_up = alloc(DType::kQ4_K, {n, k}, w.data());
    a.y = alloc(DType::kF32, {1, n}, nullptr);
    a.up = alloc(DType::kF32, {1, n}, nullptr);
    a.x8 = alloc(DType::kI32, {matvec_x8_elems(k)}, nullptr);
    a.y8 = alloc(DType::kI32, {matvec_x8_elems(n)}, nullptr);
    Recorder rec(dev);
    quantize_x8(rec, a.x, a.x8);
    rec.finish();
  }
  // The unfused ops, as matvec_gate_up runs them where it cannot fuse.
  void unfused(Recorder& rec) const {
    {
      Recorder::Concurrent group(rec);
      matmul(rec, {a.x, a.w_gate, a.y, {}, {}, a.x8});
      matmul(rec, {a.x, a.w_up, a.up, {}, {}, a.x8});
    }
    gated_act(rec, {a.y, a.up, a.y, a.act, a.y8});
  }
};

void run_gate_up(benchmark::State& state, int64_t n, int64_t k, bool fused, uint32_t rows) {
  Device& dev = bench::device();
  const ScopedTuning scope(dev, [](Tuning& t) { t.matmul.fused_gate_up = true; });
  GateUp g(dev, n, k);
  g.a.rows_per_team = rows;
  {
    Recorder rec(dev);
    if (!matvec_gate_up_fused(rec, g.a)) {
      state.SkipWithError("matvec_gate_up does not fuse on this device");
      return;
    }
    // Once: the fused result against the unfused ops (tests/runtime/matvec_gate_up_test.cpp
    // derives the bounds; here a loose check that the timed kernel computes the same thing).
    matvec_gate_up(rec, g.a);
    rec.finish();
    std::vector<float> fy(static_cast<size_t>(n)), uy(static_cast<size_t>(n));
    dev.download(g.a.y, fy.data());
    g.unfused(rec);
    rec.finish();
    dev.download(g.a.y, uy.data());
    for (size_t i = 0; i < fy.size(); ++i)
      if (std::fabs(fy[i] - uy[i]) > 1e-3 * std::fabs(uy[i]) + 1e-3) {
        state.SkipWithError("fused result differs from the unfused ops");
        return;
      }
  }
  const double bytes = double(g.a.w_gate.nbytes() + g.a.w_up.nbytes());
  bench::time_gpu(
      state, dev,
      [&](Recorder& rec) {
        if (fused)
          matvec_gate_up(rec, g.a);
        else
          g.unfused(rec);
      },
      bytes, 4.0 * double(n) * double(k));
}

const bool kRegistered = [] {
  struct Shape {
    const char* name;
    int64_t n, k;
  };
  for (const Shape s :
       {Shape{"llama3_8b_14336x4096", 14336, 4096}, Shape{"qwen2_5_7b_18944x3584", 18944, 3584}})
    for (const uint32_t rows : {0u, 2u, 4u, 8u, 16u, 32u, 99u}) {  // 99: the unfused ops
      const bool fused = rows != 99;
      if (fused && rows && 64 * 32 / rows > bench::device().caps().max_workgroup_invocations)
        continue;
      const std::string v = !fused ? "unfused" : rows ? fmt::format("fused_r{}", rows) : "fused";
      benchmark::RegisterBenchmark((std::string("BM_gate_up/") + s.name + "_q4_k/" + v).c_str(),
                                   run_gate_up, s.n, s.k, fused, fused ? rows : 0u)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  return true;
}();

}  // namespace
}  // namespace kvz
