// CPU backend: aligned host allocations and an immediate-mode recorder (runtime/cpu).
#include "runtime/cpu/cpu_device.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <thread>

#include "runtime/cpu/parallel.h"
#include "runtime/cpu/qdot.h"

namespace kvz::cpu {
namespace {

class CpuRecorder final : public RecorderBackend {
 public:
  void dispatch(const Kernel& k, std::span<const Tensor>, const void*, uint32_t, Grid) override {
    KVZ_CHECK(false, "the CPU backend cannot run shader {}; the op must call its CPU path",
              shader_name(k.shader));
  }
  void copy(const BufferView& src, const BufferView& dst, size_t bytes) override {
    std::memmove(dst.host, src.host, bytes);
  }
  void fill_zero(const BufferView& dst) override { std::memset(dst.host, 0, dst.size_bytes); }
  void upload(const BufferView& dst, const void* src, size_t bytes) override {
    KVZ_CHECK(bytes <= dst.size_bytes, "upload of {} bytes into a {}-byte view", bytes,
              dst.size_bytes);
    std::memcpy(dst.host, src, bytes);  // work runs as it is recorded: already in order
  }
  void timestamp(std::string_view label) override {
    auto now = std::chrono::steady_clock::now();
    double ms =
        stamps_.empty() ? 0.0 : std::chrono::duration<double, std::milli>(now - last_).count();
    stamps_.push_back({std::string(label), ms});
    last_ = now;
  }
  void submit() override {}
  void wait() override {}
  std::vector<TimedSpan> timings() override { return std::exchange(stamps_, {}); }

 private:
  std::vector<TimedSpan> stamps_;
  std::chrono::steady_clock::time_point last_;
};

class CpuDevice final : public Device, public Allocator {
 public:
  CpuDevice() : caps_(cpu_caps()) {}
  BackendKind kind() const override { return BackendKind::kCpu; }
  const DeviceCaps& caps() const override { return caps_; }
  Buffer alloc(size_t bytes, MemoryKind) override {
    size_t n = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n);
    if (!p) throw OutOfMemory(fmt::format("cannot allocate {} bytes of host memory", bytes));
    in_use_ += n;
    BufferView v;
    v.handle = reinterpret_cast<uint64_t>(p);
    v.size_bytes = bytes;
    v.host = static_cast<std::byte*>(p);
    return Buffer(this, v, n);
  }
  void release(const BufferView& v, uint64_t token) noexcept override {
    std::free(reinterpret_cast<void*>(v.handle));
    in_use_ -= token;
  }
  void upload(const BufferView& dst, const void* src, size_t bytes) override {
    KVZ_CHECK(bytes <= dst.size_bytes);
    std::memcpy(dst.host, src, bytes);
  }
  void download(const BufferView& src, void* dst, size_t bytes) override {
    KVZ_CHECK(bytes <= src.size_bytes);
    std::memcpy(dst, src.host, bytes);
  }
  std::unique_ptr<RecorderBackend> make_recorder() override {
    return std::make_unique<CpuRecorder>();
  }
  uint64_t bytes_in_use() const override { return in_use_; }

 private:
  DeviceCaps caps_;
  std::atomic<uint64_t> in_use_{0};
};

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "CPU";
}

}  // namespace

DeviceCaps cpu_caps() {
  DeviceCaps c;
  c.name = "CPU backend (" + cpu_model_name() + ")";
  // The SIMD level the kernels dispatch to, e.g. "kvzip-vk CPU AVX3_DL, 2 threads".
  c.driver = fmt::format("kvzip-vk CPU {}, {} threads", simd_target_name(), default_threads());
  c.type = "cpu";
  c.software = true;
  c.max_storage_buffer_range = UINT64_MAX;
  c.max_alloc_bytes = UINT64_MAX;
  return c;
}

std::unique_ptr<Device> make_cpu_device() { return std::make_unique<CpuDevice>(); }

}  // namespace kvz::cpu
