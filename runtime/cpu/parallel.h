// Fork-join loops for the CPU backend's fast paths (runtime/cpu): one process-wide pool of
// default_threads() - 1 workers sleeping on a condition variable (waking a sleeping worker is far
// cheaper than spawning a thread, and decode forks for every op of every token). Work items are
// pulled from a shared counter, so uneven items (causal attention tiles) balance themselves.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

namespace kvz::cpu {

// Threads the CPU backend uses by default: set_cpu_threads (runtime/device.h), else the hardware
// concurrency (at least 1).
int default_threads();

// Runs fn(worker) on `n_threads` threads (the caller is worker 0) and returns when all are done.
// Another parallel region already running (a nested call, or a second caller thread) makes this
// one run fn(0) alone on the calling thread, so it never deadlocks.
void run_parallel(int n_threads, const std::function<void(int)>& fn);

// Calls fn(worker, item) for every item in [0, n_items) on min(n_threads, n_items) threads;
// worker in [0, threads) indexes per-thread scratch. n_threads <= 0 means default_threads().
template <class Fn>
void parallel_for(int64_t n_items, int n_threads, Fn&& fn) {
  if (n_threads <= 0) n_threads = default_threads();
  const int t = int(std::min<int64_t>(n_threads, n_items));
  if (t <= 1) {
    for (int64_t i = 0; i < n_items; ++i) fn(0, i);
    return;
  }
  std::atomic<int64_t> next{0};
  run_parallel(t, [&](int worker) {
    for (int64_t i = next.fetch_add(1); i < n_items; i = next.fetch_add(1)) fn(worker, i);
  });
}

}  // namespace kvz::cpu
