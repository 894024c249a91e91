// Shared by the kernel benchmarks (bench/): the device they run on (KVZIP_DEVICE, one for the
// whole binary) and the GPU timing loop: each benchmark iteration records kRunsPerSpan
// back-to-back runs of the work between two timestamps and reports their mean, so that launch
// gaps and clock changes between submits weigh less than one isolated dispatch.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "runtime/recorder.h"

namespace kvz::bench {

inline Device& device() {
  static std::unique_ptr<Device> dev = open_device();
  return *dev;
}

constexpr int kRunsPerSpan = 8;

// A tensor of `shape` in a new buffer that `keep` owns, filled from `src` when given.
inline Tensor bench_tensor(Device& dev, std::vector<Buffer>& keep, DType t,
                           std::initializer_list<int64_t> shape, const void* src) {
  Tensor probe(BufferView{0, 0, SIZE_MAX, nullptr}, t, shape);
  keep.push_back(dev.alloc(probe.nbytes()));
  Tensor x = keep.back().tensor(t, shape);
  if (src) dev.upload(x, src);
  return x;
}

// Warms up (pipelines, clocks), then times `record`; sets GB/s and TFLOP/s counters from the
// bytes and flops of one run.
inline void time_gpu(benchmark::State& state, Device& dev,
                     const std::function<void(Recorder&)>& record, double bytes, double flops) {
  Recorder rec(dev);
  for (int i = 0; i < 3; ++i) record(rec);
  rec.finish();
  double total_s = 0;
  for (auto _ : state) {
    rec.timestamp("begin");
    for (int i = 0; i < kRunsPerSpan; ++i) record(rec);
    rec.timestamp("end");
    rec.finish();
    auto spans = rec.timings();
    const double s = spans.empty() ? 0.0 : spans.back().ms * 1e-3 / kRunsPerSpan;
    state.SetIterationTime(s);
    total_s += s;
  }
  const double per_s = total_s > 0 ? double(state.iterations()) / total_s : 0.0;
  if (bytes > 0) state.counters["GB/s"] = bytes * 1e-9 * per_s;
  if (flops > 0) state.counters["TFLOP/s"] = flops * 1e-12 * per_s;
}

}  // namespace kvz::bench
