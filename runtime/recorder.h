// Recorder = a stream of compute work on a Device: dispatches, copies and timestamps are recorded
// and run on submit (Vulkan), or run immediately (CPU backend). Runtime public API.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvz_shaders.h"
#include "runtime/device.h"

namespace kvz {

struct Grid {
  uint32_t x = 1, y = 1, z = 1;
};

// Pipeline identity: shader variant + specialization constants (ids 0..n-1, 32-bit each) + the
// subgroup size the pipeline requests with full subgroups (0: the driver's default; otherwise
// DeviceCaps::subgroup_size_control must allow it and the workgroup size be a multiple of it).
struct Kernel {
  ShaderId shader;
  std::vector<uint32_t> spec;
  uint32_t subgroup_size = 0;
};

struct TimedSpan {
  std::string label;
  double ms = 0;  // time since the previous timestamp (or since the first one)
};

// Implemented by runtime/vk and runtime/cpu.
class RecorderBackend {
 public:
  virtual ~RecorderBackend() = default;
  virtual void dispatch(const Kernel& k, std::span<const Tensor> bindings, const void* push,
                        uint32_t push_bytes, Grid grid) = 0;
  virtual void copy(const BufferView& src, const BufferView& dst, size_t bytes) = 0;
  virtual void fill_zero(const BufferView& dst) = 0;
  virtual void upload(const BufferView& dst, const void* src, size_t bytes) = 0;
  virtual void timestamp(std::string_view label) = 0;
  // Between begin_concurrent() and end_concurrent() dispatches skip the barrier before them
  // (the first one keeps it); end_concurrent() orders everything after the group.
  virtual void begin_concurrent() {}
  virtual void end_concurrent() {}
  virtual void submit() = 0;
  virtual void wait() = 0;
  // Submissions so far (a ticket for wait_for), and a wait for the first `n` of them. Backends
  // that run work at once keep the defaults.
  virtual uint64_t submitted() const { return 0; }
  virtual void wait_for(uint64_t /*n*/) {}
  virtual std::vector<TimedSpan> timings() = 0;
};

class Recorder {
 public:
  explicit Recorder(Device& dev) : dev_(&dev), impl_(dev.make_recorder()) {}
  Device& device() const { return *dev_; }
  bool is_cpu() const { return dev_->kind() == BackendKind::kCpu; }
  const DeviceCaps& caps() const { return dev_->caps(); }
  const Tuning& tuning() const { return dev_->tuning(); }

  // One compute dispatch. Bindings become storage buffers 0..n-1 (std430), `push` the push-
  // constant block; `grid` counts workgroups. A barrier orders it after earlier work.
  template <class Push>
  void dispatch(const Kernel& k, std::initializer_list<Tensor> bindings, const Push& push,
                Grid grid) {
    static_assert(sizeof(Push) % 4 == 0 && sizeof(Push) <= 128,
                  "push constants: <=128 B, 4-aligned");
    impl_->dispatch(k, std::span<const Tensor>(bindings.begin(), bindings.size()), &push,
                    sizeof(Push), grid);
  }
  void copy(const Tensor& src, const Tensor& dst);
  void fill_zero(const Tensor& dst) { impl_->fill_zero(dst.mem()); }
  // Host bytes into dst, in stream order: the bytes are copied now into a staging buffer of the
  // recorder and reach dst when the work recorded before has run (no wait on the host).
  void upload(const BufferView& dst, const void* src, size_t bytes) {
    impl_->upload(dst, src, bytes);
  }
  void timestamp(std::string_view label) { impl_->timestamp(label); }

  // Scope of independent dispatches: none reads what another of the group writes, so the GPU
  // may overlap them (no barrier between them). Work before and after stays ordered.
  class Concurrent {
   public:
    explicit Concurrent(Recorder& rec) : rec_(rec) {
      rec_.impl_->begin_concurrent();
      ++rec_.concurrent_depth_;
    }
    ~Concurrent() {
      --rec_.concurrent_depth_;
      rec_.impl_->end_concurrent();
    }
    Concurrent(const Concurrent&) = delete;
    Concurrent& operator=(const Concurrent&) = delete;

   private:
    Recorder& rec_;
  };

  // Whether a Concurrent scope is open: what is recorded now shares the GPU with the rest of the
  // group, so a grid's size alone does not say how busy the GPU is.
  bool in_concurrent() const { return concurrent_depth_ > 0; }

  // Hands the recorded work to the GPU; returns a ticket for wait_for() that covers it and all
  // work submitted before.
  uint64_t submit() {
    impl_->submit();
    return impl_->submitted();
  }
  void wait() { impl_->wait(); }
  // Waits until the work of `ticket` (a submit() result) has run; later submissions may still be
  // running, so the host can read one step's result while the GPU works on the next.
  void wait_for(uint64_t ticket) { impl_->wait_for(ticket); }
  void finish() {
    impl_->submit();
    impl_->wait();
  }
  // Spans between timestamps of finished work; clears them.
  std::vector<TimedSpan> timings() { return impl_->timings(); }

 private:
  Device* dev_;
  std::unique_ptr<RecorderBackend> impl_;
  int concurrent_depth_ = 0;
};

inline uint32_t div_up(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

}  // namespace kvz
