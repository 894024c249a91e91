// Benchmarks of the element-wise and per-row ops (bench/): RMSNorm, residual add, gated MLP
// activation, RoPE, softmax, embedding lookup, argmax and top-k/top-p sampling, at LLaMA-3.1-8B
// sizes for a 512-token prefill chunk and for one decode token. They are memory-bound: GB/s
// counts the bytes each op must read and write once. In decode they are short dispatches, so the
// time per call there is mostly launch and barrier cost (bench/RESULTS.md, "Where the time goes").
// Correctness lives in tests/runtime; this file only times.
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "bench/bench_timing.h"
#include "runtime/ops/activation.h"
#include "runtime/ops/elementwise.h"
#include "runtime/ops/matmul.h"
#include "runtime/ops/rms_norm.h"
#include "runtime/ops/rope.h"
#include "runtime/ops/sampling.h"

namespace kvz {
namespace {

constexpr int64_t kDModel = 4096, kDff = 14336, kHeads = 32, kHeadDim = 128, kVocab = 128256;
constexpr int64_t kTableRows = 32768;  // embedding rows (a gather: the table size hardly matters)

// Device tensors of one benchmark, filled with values in [-1, 1).
struct Tensors {
  std::vector<Buffer> keep;
  Tensor make(DType t, std::initializer_list<int64_t> shape, uint64_t seed = 1) {
    Tensor probe(BufferView{0, 0, SIZE_MAX, nullptr}, t, shape);
    keep.push_back(bench::device().alloc(probe.nbytes()));
    Tensor x = keep.back().tensor(t, shape);
    std::vector<uint8_t> bytes(probe.nbytes());
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    auto next = [&s] {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      return s;
    };
    if (t == DType::kF32) {
      auto* f = reinterpret_cast<float*>(bytes.data());
      for (size_t i = 0; i < bytes.size() / 4; ++i)
        f[i] = float(double(next() >> 11) / double(1ull << 53) * 2 - 1);
    } else if (t == DType::kI32) {
      auto* v = reinterpret_cast<int32_t*>(bytes.data());
      for (size_t i = 0; i < bytes.size() / 4; ++i) v[i] = int32_t(i);  // ids / positions
    } else {  // f16 table: small finite halves (sign, exponent 0x0c..0x0f)
      auto* h = reinterpret_cast<uint16_t*>(bytes.data());
      for (size_t i = 0; i < bytes.size() / 2; ++i)
        h[i] = uint16_t(((next() & 1) << 15) | ((0x0c + next() % 4) << 10) | (next() & 0x3ff));
    }
    bench::device().upload(x, bytes.data());
    return x;
  }
};

void run(benchmark::State& state, const std::function<void(Tensors&, Recorder&)>& op,
         const std::function<void(Tensors&)>& setup, double bytes) {
  Tensors t;
  setup(t);
  bench::time_gpu(
      state, bench::device(), [&](Recorder& rec) { op(t, rec); }, bytes, 0.0);
}

struct SmallOp {
  std::string name;
  std::function<void(benchmark::State&)> fn;
};

std::vector<SmallOp> small_ops() {
  std::vector<SmallOp> ops;
  for (int64_t n : {int64_t{512}, int64_t{1}}) {
    const std::string sfx = n == 1 ? "_decode" : "_m512";
    ops.push_back({"BM_rms_norm/llama3_8b" + sfx, [n](benchmark::State& st) {
                     RmsNormArgs a;
                     run(
                         st, [&a](Tensors&, Recorder& rec) { rms_norm(rec, a); },
                         [&a, n](Tensors& t) {
                           a.x = t.make(DType::kF32, {n, kDModel}, 1);
                           a.w = t.make(DType::kF32, {kDModel}, 2);
                           a.y = t.make(DType::kF32, {n, kDModel}, 3);
                         },
                         4.0 * (2 * n * kDModel + kDModel));
                   }});
    ops.push_back({"BM_add/llama3_8b" + sfx, [n](benchmark::State& st) {
                     AddArgs a;
                     run(
                         st, [&a](Tensors&, Recorder& rec) { add(rec, a); },
                         [&a, n](Tensors& t) {
                           a.a = t.make(DType::kF32, {n, kDModel}, 1);
                           a.b = t.make(DType::kF32, {n, kDModel}, 2);
                           a.y = a.a;
                         },
                         4.0 * 3 * n * kDModel);
                   }});
    ops.push_back({"BM_gated_act/llama3_8b_silu" + sfx, [n](benchmark::State& st) {
                     GatedActArgs a;
                     run(
                         st, [&a](Tensors&, Recorder& rec) { gated_act(rec, a); },
                         [&a, n](Tensors& t) {
                           a.gate = t.make(DType::kF32, {n, kDff}, 1);
                           a.up = t.make(DType::kF32, {n, kDff}, 2);
                           a.y = a.gate;
                         },
                         4.0 * 3 * n * kDff);
                   }});
    ops.push_back({"BM_rope/llama3_8b_q" + sfx, [n](benchmark::State& st) {
                     RopeArgs a;
                     run(
                         st, [&a](Tensors&, Recorder& rec) { rope(rec, a); },
                         [&a, n](Tensors& t) {
                           a.x = t.make(DType::kF32, {n, kHeads, kHeadDim}, 1);
                           a.pos = t.make(DType::kI32, {n});
                           a.inv_freq = t.make(DType::kF32, {kHeadDim / 2}, 2);
                         },
                         4.0 * 2 * n * kHeads * kHeadDim);
                   }});
    ops.push_back({"BM_embedding/llama3_8b_f16" + sfx, [n](benchmark::State& st) {
                     EmbeddingArgs a;
                     run(
                         st, [&a](Tensors&, Recorder& rec) { embedding(rec, a); },
                         [&a, n](Tensors& t) {
                           a.table = t.make(DType::kF16, {kTableRows, kDModel});
                           a.ids = t.make(DType::kI32, {n});
                           a.y = t.make(DType::kF32, {n, kDModel}, 3);
                         },
                         double(n) * kDModel * (2 + 4));
                   }});
  }
  ops.push_back({"BM_softmax/llama3_8b_vocab_rows8", [](benchmark::State& st) {
                   SoftmaxArgs a;
                   run(
                       st, [&a](Tensors&, Recorder& rec) { softmax(rec, a); },
                       [&a](Tensors& t) {
                         a.x = t.make(DType::kF32, {8, kVocab}, 1);
                         a.y = t.make(DType::kF32, {8, kVocab}, 2);
                       },
                       4.0 * 2 * 8 * kVocab);
                 }});
  ops.push_back({"BM_argmax/llama3_8b_vocab", [](benchmark::State& st) {
                   ArgmaxArgs a;
                   run(
                       st, [&a](Tensors&, Recorder& rec) { argmax(rec, a); },
                       [&a](Tensors& t) {
                         a.logits = t.make(DType::kF32, {1, kVocab}, 1);
                         a.out = t.make(DType::kI32, {1});
                       },
                       4.0 * kVocab);
                 }});
  // Sampling at the CLI's defaults (temperature only) and with top-k 40 / top-p 0.9; the radix
  // kernel where the device has subgroup arithmetic (KVZ_SAMPLE_BISECT=1: the bisection one).
  for (const auto& [name, top_k, top_p] :
       {std::tuple{"BM_sample/llama3_8b_vocab_temp", 0, 1.0f},
        std::tuple{"BM_sample/llama3_8b_vocab_top40_p0.9", 40, 0.9f}})
    ops.push_back({name, [top_k = top_k, top_p = top_p](benchmark::State& st) {
                     SampleArgs a;
                     a.temperature = 0.8f, a.top_k = top_k, a.top_p = top_p;
                     run(
                         st, [&a](Tensors&, Recorder& rec) { sample(rec, a); },
                         [&a](Tensors& t) {
                           a.logits = t.make(DType::kF32, {1, kVocab}, 1);
                           a.uniform = t.make(DType::kF32, {1}, 2);
                           const float u = 0.5f;  // the draw in [0, 1)
                           bench::device().upload(a.uniform, &u);
                           a.out = t.make(DType::kI32, {1});
                         },
                         4.0 * kVocab);
                   }});
  return ops;
}

const bool kRegistered = [] {
  for (SmallOp& op : small_ops())
    benchmark::RegisterBenchmark(op.name.c_str(), [fn = op.fn](benchmark::State& st) { fn(st); })
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  return true;
}();

}  // namespace
}  // namespace kvz
