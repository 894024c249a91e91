// Device = one compute backend (a Vulkan physical device, or the CPU fallback) with its memory
// (runtime/ public API; no Vulkan types here, those live in runtime/vk/).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tensor.h"
#include "runtime/tuning.h"

namespace kvz {

enum class BackendKind { kCpu, kVulkan };

// Memory named by intent. kDeviceLocal is where tensors live; kUpload/kReadback are host-visible
// staging memory (on the CPU backend all three are plain host memory).
enum class MemoryKind { kDeviceLocal, kUpload, kReadback };

// One cooperative-matrix shape of subgroup scope (A and B share a_type, C and the result c_type;
// KHR shapes of other scopes or mixed types are not listed).
struct CoopMatShape {
  uint32_t m = 0, n = 0, k = 0;
  std::string a_type, c_type;  // "f16", "bf16", "s8", "f32", ...
  std::string ext;             // "KHR" or "NV"
};

// One workgroup-scope shape family of VK_NV_cooperative_matrix2's flexible dimensions: matrices of
// any multiple of the granularities (up to coopmat2_max_dimension) for workgroups of exactly
// `workgroup` invocations.
struct CoopMat2Shape {
  uint32_t m_gran = 0, n_gran = 0, k_gran = 0, workgroup = 0;
  std::string a_type, c_type;
};

// Probed once when the device opens; every variant choice reads it (B3).
struct DeviceCaps {
  std::string name;
  std::string driver;       // driver name + info string
  std::string api_version;  // "1.3.230"
  std::string type;         // "discrete", "integrated", "virtual", "cpu", "other"
  uint32_t vendor_id = 0;
  bool software = false;      // lavapipe / the CPU backend
  bool fp16 = false;          // shaderFloat16
  bool storage16 = false;     // storageBuffer16BitAccess
  bool storage8 = false;      // storageBuffer8BitAccess
  bool int8 = false;          // shaderInt8
  bool int8_dot = false;      // VK_KHR_shader_integer_dot_product
  bool bf16 = false;          // VK_KHR_shader_bfloat16
  bool memory_model = false;  // vulkanMemoryModel (coopmat shaders are compiled against it)
  bool subgroup_arith = false;
  bool subgroup_shuffle = false;  // subgroupShuffle / subgroupShuffleXor in compute shaders
  uint32_t subgroup_size = 1;
  // Subgroup size control (VK_EXT_subgroup_size_control): compute pipelines may request any power
  // of two in [subgroup_size_min, subgroup_size_max] with full subgroups (Kernel::subgroup_size).
  bool subgroup_size_control = false;
  uint32_t subgroup_size_min = 0, subgroup_size_max = 0;
  uint32_t max_workgroup_subgroups = 0;  // maxComputeWorkgroupSubgroups (with size control)
  bool coopmat_khr = false;  // VK_KHR_cooperative_matrix (feature on, compute stage supported)
  bool coopmat_nv = false;   // VK_NV_cooperative_matrix
  // VK_NV_cooperative_matrix2 with workgroup scope, flexible dimensions, tensor addressing and
  // per-element operations (what the *_cm2 kernels use; device creation enables its features).
  bool coopmat2_nv = false;
  std::vector<CoopMat2Shape> coopmat2_shapes;
  uint32_t coopmat2_max_dimension = 0;
  std::vector<CoopMatShape> coopmat_shapes;
  uint32_t shared_memory_bytes = 0;
  // Streaming multiprocessors (VK_NV_shader_sm_builtins) or compute units
  // (VK_AMD_shader_core_properties); 0 where the driver does not say (Intel, lavapipe).
  uint32_t compute_units = 0;
  uint32_t max_workgroup_invocations = 0;
  std::array<uint32_t, 3> max_workgroup_count{};
  uint64_t max_storage_buffer_range = 0;  // largest tensor one binding can see
  uint64_t max_alloc_bytes = 0;
  uint64_t device_local_bytes = 0;
  uint32_t storage_offset_alignment = 16;
  bool timestamps = false;
  double timestamp_period_ns = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void release(const BufferView& view, uint64_t token) noexcept = 0;
};

// Owning handle of one (sub)allocation; move-only, frees on destruction.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Allocator* owner, BufferView view, uint64_t token)
      : owner_(owner), view_(view), token_(token) {}
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  void reset() noexcept;
  const BufferView& view() const { return view_; }
  size_t size() const { return view_.size_bytes; }
  explicit operator bool() const { return owner_ != nullptr; }
  // A tensor over the start of this buffer.
  Tensor tensor(DType dtype, std::initializer_list<int64_t> shape) const {
    return Tensor(view_, dtype, shape);
  }

 private:
  Allocator* owner_ = nullptr;
  BufferView view_;
  uint64_t token_ = 0;
};

class RecorderBackend;

class Device {
 public:
  virtual ~Device() = default;
  virtual BackendKind kind() const = 0;
  virtual const DeviceCaps& caps() const = 0;
  // Throws OutOfMemory (recoverable) when the memory kind is exhausted.
  virtual Buffer alloc(size_t bytes, MemoryKind kind = MemoryKind::kDeviceLocal) = 0;
  // Synchronous copies between host memory and a buffer view (waits for the copy only; the
  // caller makes sure no recorded work still uses the bytes).
  virtual void upload(const BufferView& dst, const void* src, size_t bytes) = 0;
  virtual void download(const BufferView& src, void* dst, size_t bytes) = 0;
  virtual std::unique_ptr<RecorderBackend> make_recorder() = 0;
  // Bytes currently allocated from the device (all kinds).
  virtual uint64_t bytes_in_use() const = 0;
  // Validation-layer errors and warnings seen so far (0 when validation is off).
  virtual uint64_t validation_messages() const { return 0; }
  // Whether the Khronos validation layer is active on this device.
  virtual bool validation_enabled() const { return false; }

  // The tunables in force (runtime/tuning.h): open_device resolves them from the capabilities and
  // the environment; tests and benchmarks may replace them (ScopedTuning).
  const Tuning& tuning() const { return tuning_; }
  void set_tuning(const Tuning& t) { tuning_ = t; }

  // Convenience: allocate and fill.
  Buffer alloc_upload(const void* src, size_t bytes);
  void upload(const Tensor& dst, const void* src) { upload(dst.mem(), src, dst.nbytes()); }
  void download(const Tensor& src, void* dst) { download(src.mem(), dst, src.nbytes()); }

 private:
  Tuning tuning_;
};

// Tests and benchmarks: `dev` runs with `edit` applied to its tuning while this object lives.
class ScopedTuning {
 public:
  template <class Edit>
  ScopedTuning(Device& dev, Edit&& edit) : dev_(dev), saved_(dev.tuning()) {
    Tuning t = saved_;
    edit(t);
    dev_.set_tuning(t);
  }
  ~ScopedTuning() { dev_.set_tuning(saved_); }
  ScopedTuning(const ScopedTuning&) = delete;
  ScopedTuning& operator=(const ScopedTuning&) = delete;

 private:
  Device& dev_;
  Tuning saved_;
};

// Opens a device chosen by `selector`: "" picks the first discrete GPU, else integrated, else
// any Vulkan device (lavapipe), else the CPU backend; "cpu" forces the CPU backend; a number is
// a Vulkan device index; anything else matches a device-name substring. When selector is empty the
// environment variable KVZIP_DEVICE is read. The device's tuning (runtime/tuning.h) comes from its
// capabilities and the KVZ_* variables, read here once. Throws DeviceError if an explicit selector
// matches nothing, InputError for a bad KVZ_* value.
std::unique_ptr<Device> open_device(std::string_view selector = {});

// Threads the CPU backend's kernels run on (one process-wide pool): n >= 1, or 0 for one per
// hardware thread (the default). Applies to work started after the call.
void set_cpu_threads(int n);
int cpu_threads();
// Whether the CPU backend's matmuls with block-quantised weights round x to int8 per 32 values
// and multiply in integer SIMD (fast; x moves by at most amax / 254 per value, as llama.cpp's
// Q8 activations), or dequantise the weights to f32 and keep x exact (default: exact).
void set_cpu_int8_activations(bool on);
bool cpu_int8_activations();

// Every device the loader reports (plus the CPU backend last), with probed capabilities
// (resolve_tuning gives the tuning each would open with).
std::vector<DeviceCaps> list_devices();

}  // namespace kvz
