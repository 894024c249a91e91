// The CPU backend's worker pool (runtime/cpu): see parallel.h; set_cpu_threads (runtime/device.h).
#include "runtime/cpu/parallel.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/device.h"
#include "runtime/error.h"

namespace kvz::cpu {
namespace {

class Pool {
 public:
  explicit Pool(int n_workers) {
    for (int w = 1; w <= n_workers; ++w) threads_.emplace_back([this, w] { loop(w); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int size() const { return int(threads_.size()); }

  // Workers 1..n_threads-1 run fn; the caller runs fn(0). Callers hold region_mutex().
  void run(int n_threads, const std::function<void(int)>& fn) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &fn, active_ = n_threads, pending_ = n_threads - 1, ++generation_;
    }
    wake_.notify_all();
    fn(0);
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void loop(int w) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (w >= active_) continue;
      const std::function<void(int)>* job = job_;
      lk.unlock();
      (*job)(w);
      lk.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* job_ = nullptr;  // valid while pending_ > 0
  int active_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;  // last: joined by the destructor before members go
};

std::atomic<int> g_threads{0};  // set_cpu_threads; 0 = hardware concurrency

std::mutex& region_mutex() {  // held for one parallel region, and to replace the pool
  static std::mutex m;
  return m;
}

}  // namespace

int default_threads() {
  const int t = g_threads.load(std::memory_order_relaxed);
  return t > 0 ? t : int(std::max(1u, std::thread::hardware_concurrency()));
}

void run_parallel(int n_threads, const std::function<void(int)>& fn) {
  std::unique_lock<std::mutex> region(region_mutex(), std::try_to_lock);
  if (n_threads <= 1 || !region.owns_lock()) return fn(0);
  // Created on first use, grown (never shrunk) when more threads are asked for than it has.
  static std::unique_ptr<Pool> pool;
  if (!pool || pool->size() + 1 < n_threads) {
    pool.reset();
    pool = std::make_unique<Pool>(std::max(n_threads, default_threads()) - 1);
  }
  pool->run(n_threads, fn);
}

}  // namespace kvz::cpu

namespace kvz {

void set_cpu_threads(int n) {
  KVZ_CHECK(n >= 0, "set_cpu_threads({})", n);
  cpu::g_threads.store(n, std::memory_order_relaxed);
}
int cpu_threads() { return cpu::default_threads(); }

namespace {
std::atomic<bool> g_int8{false};
}  // namespace
void set_cpu_int8_activations(bool on) { g_int8.store(on, std::memory_order_relaxed); }
bool cpu_int8_activations() { return g_int8.load(std::memory_order_relaxed); }

}  // namespace kvz
