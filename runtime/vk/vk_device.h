// Vulkan implementation of kvz::Device (runtime/vk, private): instance + validation, device
// choice and capability probe, suballocating memory, staging copies, the pipeline cache.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/device.h"
#include "runtime/recorder.h"
#include "runtime/vk/vk_common.h"

namespace kvz::gpu {

// One instance (and its loader) shared by every Vulkan device opened in the process.
struct Instance {
  vk::raii::Context context;
  vk::raii::Instance instance = nullptr;
  std::optional<vk::raii::DebugUtilsMessengerEXT> messenger;
  std::atomic<uint64_t> validation_messages{0};
  bool validation = false;
  uint32_t validation_layer_version = 0;  // specVersion of VK_LAYER_KHRONOS_validation when on
  uint32_t api_version = 0;               // VkApplicationInfo::apiVersion asked for
};
// Throws DeviceError if no Vulkan loader or instance is available. The first call creates the
// instance, with the validation layer where `validation` (instance-wide from then on).
Instance& instance(bool validation = false);

// `max_storage_buffer_range`: a lower limit to report (0: the device's own).
DeviceCaps probe_caps(const vk::raii::PhysicalDevice& pd, uint64_t max_storage_buffer_range = 0);

struct PipelineEntry {
  vk::raii::DescriptorSetLayout set_layout = nullptr;
  vk::raii::PipelineLayout layout = nullptr;
  vk::raii::Pipeline pipeline = nullptr;
};

class VulkanDevice final : public Device, public Allocator {
 public:
  VulkanDevice(Instance& inst, const vk::raii::PhysicalDevice& pd, const DiagnosticTuning& diag);
  ~VulkanDevice() override;

  BackendKind kind() const override { return BackendKind::kVulkan; }
  const DeviceCaps& caps() const override { return caps_; }
  Buffer alloc(size_t bytes, MemoryKind kind) override;
  void upload(const BufferView& dst, const void* src, size_t bytes) override;
  void download(const BufferView& src, void* dst, size_t bytes) override;
  std::unique_ptr<RecorderBackend> make_recorder() override;
  uint64_t bytes_in_use() const override { return bytes_in_use_; }
  uint64_t validation_messages() const override { return inst_->validation_messages.load(); }
  bool validation_enabled() const override { return inst_->validation; }
  void release(const BufferView& view, uint64_t token) noexcept override;

  const vk::raii::Device& dev() const { return device_; }
  const vk::raii::Queue& queue() const { return queue_; }
  uint32_t queue_family() const { return queue_family_; }
  // Pipeline for (shader, spec constants, binding count, push size), created on first use.
  const PipelineEntry& pipeline(const Kernel& k, uint32_t n_bindings, uint32_t push_bytes);
  // Submits `cb` and blocks until it finished.
  void submit_and_wait(const vk::raii::CommandBuffer& cb);

 private:
  struct Block;
  struct Pool;
  Pool& pool_for(MemoryKind kind);
  void copy_staged(const BufferView& dst_or_src, void* host, size_t bytes, bool to_device);
  void log_pipeline_stats(const Kernel& k, vk::Pipeline pipeline) const;

  Instance* inst_;
  DeviceCaps caps_;
  vk::raii::PhysicalDevice physical_;
  // Declared before everything created from it: destroyed last.
  vk::raii::Device device_ = nullptr;
  vk::raii::Queue queue_ = nullptr;
  uint32_t queue_family_ = 0;
  vk::raii::CommandPool transfer_pool_ = nullptr;
  vk::raii::Fence transfer_fence_ = nullptr;
  vk::raii::PipelineCache vk_pipeline_cache_ = nullptr;
  bool pipeline_stats_ = false;  // KVZ_PIPELINE_STATS and the device can report them
  std::map<std::vector<uint32_t>, std::unique_ptr<PipelineEntry>> pipelines_;
  std::vector<std::unique_ptr<Pool>> pools_;  // indexed by MemoryKind
  std::mutex mutex_;
  std::atomic<uint64_t> bytes_in_use_{0};
};

std::unique_ptr<RecorderBackend> make_vk_recorder(VulkanDevice& dev);

}  // namespace kvz::gpu
