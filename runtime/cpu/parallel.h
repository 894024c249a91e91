// A minimal fork-join loop for the CPU backend's fast paths (runtime/cpu): threads are spawned per
// call (~20 us each) and pull work items from a shared counter, so uneven items (causal attention
// tiles) balance themselves. Callers keep tiny problems on one thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace kvz::cpu {

// Threads the CPU backend uses by default: the hardware concurrency (at least 1).
inline int default_threads() { return int(std::max(1u, std::thread::hardware_concurrency())); }

// Calls fn(worker, item) for every item in [0, n_items), on min(n_threads, n_items) threads
// including the caller; worker in [0, threads) indexes per-thread scratch. n_threads <= 0 means
// default_threads(). Returns after every item is done.
template <class Fn>
void parallel_for(int64_t n_items, int n_threads, Fn&& fn) {
  if (n_threads <= 0) n_threads = default_threads();
  const int t = int(std::min<int64_t>(n_threads, n_items));
  if (t <= 1) {
    for (int64_t i = 0; i < n_items; ++i) fn(0, i);
    return;
  }
  std::atomic<int64_t> next{0};
  auto work = [&](int worker) {
    for (int64_t i = next.fetch_add(1); i < n_items; i = next.fetch_add(1)) fn(worker, i);
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < t; ++w) pool.emplace_back(work, w);
  work(0);
  for (auto& th : pool) th.join();
}

}  // namespace kvz::cpu
