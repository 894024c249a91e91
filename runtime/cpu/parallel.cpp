// The CPU backend's worker pool (runtime/cpu): see parallel.h.
#include "runtime/cpu/parallel.h"

#include <condition_variable>
#include <mutex>
#include <vector>

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

  // Workers 1..n_threads-1 run fn; the caller runs fn(0). Callers are serialised by region_.
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
  std::mutex region_;  // held for one parallel region

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

Pool& pool() {
  static Pool p(default_threads() - 1);
  return p;
}

}  // namespace

void run_parallel(int n_threads, const std::function<void(int)>& fn) {
  Pool& p = pool();
  n_threads = std::min(n_threads, p.size() + 1);
  std::unique_lock<std::mutex> region(p.region_, std::try_to_lock);
  if (n_threads <= 1 || !region.owns_lock()) return fn(0);
  p.run(n_threads, fn);
}

}  // namespace kvz::cpu
