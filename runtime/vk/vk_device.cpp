// VulkanDevice: logical device, suballocating memory pools, staging copies, pipelines (runtime/vk).
#include "runtime/vk/vk_device.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "runtime/tuning.h"

namespace kvz::gpu {

namespace {
constexpr size_t kBlockBytes = size_t{256} << 20;   // suballocation block
constexpr size_t kStagingBytes = size_t{64} << 20;  // staging chunk for host<->device copies
constexpr size_t kAlign = 256;                      // >= every minStorageBufferOffsetAlignment

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

bool has_ext(const std::vector<vk::ExtensionProperties>& exts, const char* name) {
  return std::any_of(exts.begin(), exts.end(),
                     [&](const auto& e) { return std::strcmp(e.extensionName, name) == 0; });
}

std::string stat_value(const vk::PipelineExecutableStatisticKHR& s) {
  switch (s.format) {
    case vk::PipelineExecutableStatisticFormatKHR::eBool32:
      return s.value.b32 ? "true" : "false";
    case vk::PipelineExecutableStatisticFormatKHR::eInt64:
      return std::to_string(s.value.i64);
    case vk::PipelineExecutableStatisticFormatKHR::eUint64:
      return std::to_string(s.value.u64);
    case vk::PipelineExecutableStatisticFormatKHR::eFloat64:
      return fmt::format("{:.3g}", s.value.f64);
  }
  return "?";
}
}  // namespace

// One VkDeviceMemory with one VkBuffer over all of it; suballocations are offsets into it.
struct VulkanDevice::Block {
  vk::raii::DeviceMemory memory = nullptr;
  vk::raii::Buffer buffer = nullptr;
  std::byte* mapped = nullptr;
  size_t size = 0;
  std::map<size_t, size_t> free;  // offset -> size, coalesced
  size_t used = 0;
};

struct VulkanDevice::Pool {
  uint32_t memory_type = 0;
  bool host_visible = false;
  std::vector<std::unique_ptr<Block>> blocks;
};

VulkanDevice::VulkanDevice(Instance& inst, const vk::raii::PhysicalDevice& pd,
                           const DiagnosticTuning& diag)
    : inst_(&inst), caps_(probe_caps(pd, diag.max_storage_buffer_range)), physical_(pd) {
  auto qfs = pd.getQueueFamilyProperties();
  bool found = false;
  for (uint32_t i = 0; i < qfs.size() && !found; ++i)
    if (qfs[i].queueFlags & vk::QueueFlagBits::eCompute) queue_family_ = i, found = true;
  if (!found) throw DeviceError("device " + caps_.name + " has no compute queue");

  auto exts = pd.enumerateDeviceExtensionProperties(nullptr);
  if (!has_ext(exts, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME))
    throw DeviceError("device " + caps_.name + " lacks VK_KHR_push_descriptor");
  std::vector<const char*> enable = {VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME};
  for (const char* opt :
       {VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME})
    if (has_ext(exts, opt)) enable.push_back(opt);
  // Pipeline statistics (registers, shared memory, spills) are logged for kernel tuning.
  pipeline_stats_ =
      diag.pipeline_stats && has_ext(exts, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
  if (pipeline_stats_)
    enable.push_back(VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
  else if (diag.pipeline_stats)
    spdlog::warn("KVZ_PIPELINE_STATS: {} lacks VK_KHR_pipeline_executable_properties", caps_.name);

  auto have = pd.getFeatures2<vk::PhysicalDeviceFeatures2, vk::PhysicalDeviceVulkan11Features,
                              vk::PhysicalDeviceVulkan12Features>();
  const auto& h10 = have.get<vk::PhysicalDeviceFeatures2>().features;
  const auto& h11 = have.get<vk::PhysicalDeviceVulkan11Features>();
  const auto& h12 = have.get<vk::PhysicalDeviceVulkan12Features>();
  if (!h12.timelineSemaphore)
    throw DeviceError("device " + caps_.name + " lacks timeline semaphores");
  vk::StructureChain<vk::PhysicalDeviceFeatures2, vk::PhysicalDeviceVulkan11Features,
                     vk::PhysicalDeviceVulkan12Features>
      want;
  auto& w10 = want.get<vk::PhysicalDeviceFeatures2>().features;
  auto& w11 = want.get<vk::PhysicalDeviceVulkan11Features>();
  auto& w12 = want.get<vk::PhysicalDeviceVulkan12Features>();
  w10.shaderInt64 = h10.shaderInt64;
  w10.shaderInt16 = h10.shaderInt16;
  w11.storageBuffer16BitAccess = h11.storageBuffer16BitAccess;
  w11.uniformAndStorageBuffer16BitAccess = h11.uniformAndStorageBuffer16BitAccess;
  w12.storageBuffer8BitAccess = h12.storageBuffer8BitAccess;
  w12.uniformAndStorageBuffer8BitAccess = h12.uniformAndStorageBuffer8BitAccess;
  w12.shaderFloat16 = h12.shaderFloat16;
  w12.shaderInt8 = h12.shaderInt8;
  w12.timelineSemaphore = VK_TRUE;
  w12.hostQueryReset = h12.hostQueryReset;
  w12.vulkanMemoryModel = h12.vulkanMemoryModel;
  w12.vulkanMemoryModelDeviceScope = h12.vulkanMemoryModelDeviceScope;

  // VK_NV_cooperative_matrix is enabled above whenever listed; its feature only where probe_caps
  // found it usable (the tensor-core matmul also needs shaderFloat16 and the Vulkan memory model,
  // which glslang's GL_KHR_memory_scope_semantics selects). VK_KHR_cooperative_matrix likewise,
  // with subgroup size control (the KHR kernels may request subgroups of 32,
  // runtime/ops/coopmat.h); size control stays off on devices without KHR cooperative matrices, so
  // nothing else changes.
  void* chain = nullptr;
  auto link = [&chain](auto& feature) {
    feature.pNext = chain;
    chain = &feature;
  };
  vk::PhysicalDeviceCooperativeMatrixFeaturesNV coopmat_nv;
  if (caps_.coopmat_nv) {
    coopmat_nv.cooperativeMatrix = VK_TRUE;
    link(coopmat_nv);
  }
  CoopMatFeaturesKhr coopmat_khr;
  if (caps_.coopmat_khr) {
    coopmat_khr.cooperativeMatrix = VK_TRUE;
    link(coopmat_khr);
    enable.push_back(kExtCoopMatKhr);
  }
  // VK_NV_cooperative_matrix2: every feature the device has (the *_cm2 kernels need four of them,
  // probe_caps checked those).
  CoopMat2FeaturesNv coopmat2;
  if (caps_.coopmat2_nv) {
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &coopmat2, {}};
    pd.getDispatcher()->vkGetPhysicalDeviceFeatures2(static_cast<VkPhysicalDevice>(*pd), &f2);
    coopmat2.pNext = nullptr;
    link(coopmat2);
    enable.push_back(kExtCoopMat2Nv);
  }
  vk::PhysicalDeviceShaderIntegerDotProductFeatures int_dot;  // extension enabled above
  if (caps_.int8_dot) {
    int_dot.shaderIntegerDotProduct = VK_TRUE;
    link(int_dot);
  }
  vk::PhysicalDevicePipelineExecutablePropertiesFeaturesKHR exec_props;
  if (pipeline_stats_) {
    exec_props.pipelineExecutableInfo = VK_TRUE;
    link(exec_props);
  }
  vk::PhysicalDeviceSubgroupSizeControlFeaturesEXT size_control;
  if (!caps_.coopmat_khr) caps_.subgroup_size_control = false;
  if (caps_.subgroup_size_control) {
    size_control.subgroupSizeControl = VK_TRUE;
    size_control.computeFullSubgroups = VK_TRUE;
    link(size_control);
    enable.push_back(VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
  }
  w12.pNext = chain;

  float prio = 1.0f;
  vk::DeviceQueueCreateInfo qci({}, queue_family_, 1, &prio);
  vk::DeviceCreateInfo dci({}, qci, {}, enable, nullptr);
  dci.pNext = &want.get<vk::PhysicalDeviceFeatures2>();
  device_ = vk::raii::Device(pd, dci);
  queue_ = vk::raii::Queue(device_, queue_family_, 0);
  transfer_pool_ = vk::raii::CommandPool(
      device_, {vk::CommandPoolCreateFlagBits::eResetCommandBuffer, queue_family_});
  transfer_fence_ = vk::raii::Fence(device_, vk::FenceCreateInfo{});
  vk_pipeline_cache_ = vk::raii::PipelineCache(device_, vk::PipelineCacheCreateInfo{});

  // Memory types per intent. Device-local prefers a type that is also host-visible only on
  // software/integrated devices (lavapipe: every type is), so discrete GPUs keep VRAM for tensors.
  vk::raii::Buffer probe(device_, vk::BufferCreateInfo({}, 256,
                                                       vk::BufferUsageFlagBits::eStorageBuffer |
                                                           vk::BufferUsageFlagBits::eTransferSrc |
                                                           vk::BufferUsageFlagBits::eTransferDst));
  uint32_t bits = probe.getMemoryRequirements().memoryTypeBits;
  auto mem = pd.getMemoryProperties();
  using M = vk::MemoryPropertyFlagBits;
  auto pick = [&](vk::MemoryPropertyFlags need, vk::MemoryPropertyFlags avoid) -> int {
    for (uint32_t i = 0; i < mem.memoryTypeCount; ++i) {
      auto f = mem.memoryTypes[i].propertyFlags;
      if ((bits & (1u << i)) && (f & need) == need && !(f & avoid)) return static_cast<int>(i);
    }
    return -1;
  };
  bool unified = caps_.type != "discrete";
  int dl = unified ? pick(M::eDeviceLocal | M::eHostVisible | M::eHostCoherent, {}) : -1;
  if (dl < 0) dl = pick(M::eDeviceLocal, M::eHostVisible);
  if (dl < 0) dl = pick(M::eDeviceLocal, {});
  int up = pick(M::eHostVisible | M::eHostCoherent, M::eDeviceLocal);
  if (up < 0) up = pick(M::eHostVisible | M::eHostCoherent, {});
  int rb = pick(M::eHostVisible | M::eHostCoherent | M::eHostCached, {});
  if (rb < 0) rb = up;
  if (dl < 0 || up < 0) throw DeviceError("device " + caps_.name + " has no usable memory types");
  for (int t : {dl, up, rb}) {
    auto p = std::make_unique<Pool>();
    p->memory_type = static_cast<uint32_t>(t);
    p->host_visible = static_cast<bool>(mem.memoryTypes[t].propertyFlags & M::eHostVisible);
    pools_.push_back(std::move(p));
  }
}

VulkanDevice::~VulkanDevice() {
  if (*device_) device_.waitIdle();
}

VulkanDevice::Pool& VulkanDevice::pool_for(MemoryKind kind) {
  return *pools_[static_cast<size_t>(kind)];
}

Buffer VulkanDevice::alloc(size_t bytes, MemoryKind kind) {
  std::lock_guard lock(mutex_);
  size_t need = align_up(std::max<size_t>(bytes, 4), kAlign);
  Pool& pool = pool_for(kind);
  auto take = [&](Block& b) -> std::optional<size_t> {
    for (auto it = b.free.begin(); it != b.free.end(); ++it) {
      if (it->second < need) continue;
      size_t off = it->first, rest = it->second - need;
      b.free.erase(it);
      if (rest) b.free[off + need] = rest;
      b.used += need;
      return off;
    }
    return std::nullopt;
  };
  Block* block = nullptr;
  std::optional<size_t> off;
  for (auto& b : pool.blocks)
    if ((off = take(*b))) {
      block = b.get();
      break;
    }
  if (!block) {
    size_t size = std::max(need, kBlockBytes);
    if (caps_.max_alloc_bytes) size = std::min<size_t>(size, caps_.max_alloc_bytes);
    if (size < need)
      throw OutOfMemory(
          fmt::format("allocation of {} bytes exceeds maxMemoryAllocationSize {} on {}", bytes,
                      caps_.max_alloc_bytes, caps_.name));
    auto b = std::make_unique<Block>();
    // Out of memory with empty blocks kept for reuse (release()): give them back, retry once.
    auto trim = [&] {
      bool freed = false;
      for (auto& p : pools_)
        freed |= std::erase_if(p->blocks, [](const auto& blk) { return blk->used == 0; }) > 0;
      return freed;
    };
    for (int attempt = 0;; ++attempt) try {
        b->buffer = vk::raii::Buffer(
            device_, vk::BufferCreateInfo({}, size,
                                          vk::BufferUsageFlagBits::eStorageBuffer |
                                              vk::BufferUsageFlagBits::eTransferSrc |
                                              vk::BufferUsageFlagBits::eTransferDst));
        auto req = b->buffer.getMemoryRequirements();
        b->memory =
            vk::raii::DeviceMemory(device_, vk::MemoryAllocateInfo(req.size, pool.memory_type));
        b->buffer.bindMemory(*b->memory, 0);
        if (pool.host_visible)
          b->mapped = static_cast<std::byte*>(b->memory.mapMemory(0, VK_WHOLE_SIZE, {}));
        break;
      } catch (const vk::SystemError& e) {
        if (attempt == 0 && trim()) {
          b = std::make_unique<Block>();
          continue;
        }
        throw OutOfMemory(
            fmt::format("cannot allocate {} MiB of {} memory on {}: {}", size >> 20,
                        kind == MemoryKind::kDeviceLocal ? "device-local" : "host-visible",
                        caps_.name, e.what()));
      }
    b->size = size;
    b->free[0] = size;
    pool.blocks.push_back(std::move(b));
    block = pool.blocks.back().get();
    off = take(*block);
  }
  bytes_in_use_ += need;
  BufferView v;
  v.handle = reinterpret_cast<uint64_t>(static_cast<VkBuffer>(*block->buffer));
  v.offset_bytes = *off;
  v.size_bytes = bytes;
  v.host = block->mapped ? block->mapped + *off : nullptr;
  return Buffer(this, v, reinterpret_cast<uint64_t>(block));
}

void VulkanDevice::release(const BufferView& view, uint64_t token) noexcept {
  std::lock_guard lock(mutex_);
  auto* block = reinterpret_cast<Block*>(token);
  size_t size = align_up(std::max<size_t>(view.size_bytes, 4), kAlign);
  size_t off = view.offset_bytes;
  auto next = block->free.lower_bound(off);
  if (next != block->free.end() && off + size == next->first) {
    size += next->second;
    next = block->free.erase(next);
  }
  if (next != block->free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      prev->second += size;
      size = 0;
    }
  }
  if (size) block->free[off] = size;
  block->used -= align_up(std::max<size_t>(view.size_bytes, 4), kAlign);
  bytes_in_use_ -= align_up(std::max<size_t>(view.size_bytes, 4), kAlign);
  if (block->used == 0) {
    // Give empty blocks back so OOM retries can succeed, but keep one empty block per pool:
    // staging and small per-token buffers would otherwise allocate (and on NVIDIA pin and map) a
    // fresh 256 MiB block on every upload, tens of milliseconds each.
    for (auto& p : pools_) {
      auto it = std::find_if(p->blocks.begin(), p->blocks.end(),
                             [&](const auto& b) { return b.get() == block; });
      if (it == p->blocks.end()) continue;
      const bool other_empty = std::any_of(p->blocks.begin(), p->blocks.end(), [&](const auto& b) {
        return b.get() != block && b->used == 0;
      });
      if (other_empty) p->blocks.erase(it);
      break;
    }
  }
}

void VulkanDevice::submit_and_wait(const vk::raii::CommandBuffer& cb) {
  vk::CommandBuffer raw = *cb;
  vk::SubmitInfo si({}, {}, raw);
  device_.resetFences(*transfer_fence_);
  queue_.submit(si, *transfer_fence_);
  if (device_.waitForFences(*transfer_fence_, VK_TRUE, UINT64_MAX) != vk::Result::eSuccess)
    throw DeviceError("waiting for a transfer failed on " + caps_.name);
}

void VulkanDevice::copy_staged(const BufferView& dev_view, void* host, size_t bytes,
                               bool to_device) {
  Buffer staging = alloc(std::min(bytes, kStagingBytes),
                         to_device ? MemoryKind::kUpload : MemoryKind::kReadback);
  auto cbs =
      vk::raii::CommandBuffers(device_, {*transfer_pool_, vk::CommandBufferLevel::ePrimary, 1});
  auto& cb = cbs[0];
  for (size_t done = 0; done < bytes; done += kStagingBytes) {
    size_t n = std::min(kStagingBytes, bytes - done);
    if (to_device) std::memcpy(staging.view().host, static_cast<std::byte*>(host) + done, n);
    cb.begin({vk::CommandBufferUsageFlagBits::eOneTimeSubmit});
    vk::MemoryBarrier mb(vk::AccessFlagBits::eMemoryWrite,
                         vk::AccessFlagBits::eMemoryRead | vk::AccessFlagBits::eMemoryWrite);
    cb.pipelineBarrier(vk::PipelineStageFlagBits::eAllCommands,
                       vk::PipelineStageFlagBits::eAllCommands, {}, mb, {}, {});
    auto sbuf = reinterpret_cast<VkBuffer>(staging.view().handle);
    auto dbuf = reinterpret_cast<VkBuffer>(dev_view.handle);
    if (to_device)
      cb.copyBuffer(sbuf, dbuf,
                    vk::BufferCopy(staging.view().offset_bytes, dev_view.offset_bytes + done, n));
    else
      cb.copyBuffer(dbuf, sbuf,
                    vk::BufferCopy(dev_view.offset_bytes + done, staging.view().offset_bytes, n));
    cb.pipelineBarrier(vk::PipelineStageFlagBits::eAllCommands,
                       vk::PipelineStageFlagBits::eAllCommands, {}, mb, {}, {});
    cb.end();
    submit_and_wait(cb);
    cb.reset({});
    if (!to_device) std::memcpy(static_cast<std::byte*>(host) + done, staging.view().host, n);
  }
}

void VulkanDevice::upload(const BufferView& dst, const void* src, size_t bytes) {
  KVZ_CHECK(bytes <= dst.size_bytes, "upload of {} bytes into a {}-byte view", bytes,
            dst.size_bytes);
  if (dst.host) {
    std::memcpy(dst.host, src, bytes);
    return;
  }
  copy_staged(dst, const_cast<void*>(src), bytes, true);
}

void VulkanDevice::download(const BufferView& src, void* dst, size_t bytes) {
  KVZ_CHECK(bytes <= src.size_bytes, "download of {} bytes from a {}-byte view", bytes,
            src.size_bytes);
  if (src.host) {
    std::memcpy(dst, src.host, bytes);
    return;
  }
  copy_staged(src, dst, bytes, false);
}

const PipelineEntry& VulkanDevice::pipeline(const Kernel& k, uint32_t n_bindings,
                                            uint32_t push_bytes) {
  std::lock_guard lock(mutex_);
  std::vector<uint32_t> key = {static_cast<uint32_t>(k.shader), n_bindings, push_bytes,
                               k.subgroup_size};
  key.insert(key.end(), k.spec.begin(), k.spec.end());
  auto it = pipelines_.find(key);
  if (it != pipelines_.end()) return *it->second;
  auto e = std::make_unique<PipelineEntry>();
  std::vector<vk::DescriptorSetLayoutBinding> binds;
  for (uint32_t i = 0; i < n_bindings; ++i)
    binds.emplace_back(i, vk::DescriptorType::eStorageBuffer, 1, vk::ShaderStageFlagBits::eCompute);
  e->set_layout = vk::raii::DescriptorSetLayout(
      device_, {vk::DescriptorSetLayoutCreateFlagBits::ePushDescriptorKHR, binds});
  vk::PushConstantRange range(vk::ShaderStageFlagBits::eCompute, 0, push_bytes);
  vk::DescriptorSetLayout sl = *e->set_layout;
  vk::PipelineLayoutCreateInfo lci({}, sl);
  if (push_bytes) lci.setPushConstantRanges(range);
  e->layout = vk::raii::PipelineLayout(device_, lci);
  auto code = spirv(k.shader);
  if (code.empty())
    throw DeviceError(
        fmt::format("shader {} is not in this build (no compiler for it at configure "
                    "time)",
                    shader_name(k.shader)));
  vk::raii::ShaderModule module(device_, {{}, code.size_bytes(), code.data()});
  std::vector<vk::SpecializationMapEntry> entries;
  for (uint32_t i = 0; i < k.spec.size(); ++i) entries.emplace_back(i, 4 * i, 4);
  vk::SpecializationInfo spec(entries, vk::ArrayProxyNoTemporaries<const uint32_t>(
                                           static_cast<uint32_t>(k.spec.size()), k.spec.data()));
  vk::PipelineShaderStageCreateInfo stage({}, vk::ShaderStageFlagBits::eCompute, *module, "main",
                                          k.spec.empty() ? nullptr : &spec);
  vk::PipelineShaderStageRequiredSubgroupSizeCreateInfoEXT subgroup(k.subgroup_size);
  if (k.subgroup_size) {
    KVZ_CHECK(caps_.subgroup_size_control && k.subgroup_size >= caps_.subgroup_size_min &&
                  k.subgroup_size <= caps_.subgroup_size_max,
              "{}: subgroup size {} not requestable on {}", shader_name(k.shader), k.subgroup_size,
              caps_.name);
    stage.flags = vk::PipelineShaderStageCreateFlagBits::eRequireFullSubgroupsEXT;
    stage.pNext = &subgroup;
  }
  vk::ComputePipelineCreateInfo pci({}, stage, *e->layout);
  if (pipeline_stats_) pci.flags = vk::PipelineCreateFlagBits::eCaptureStatisticsKHR;
  try {
    e->pipeline = vk::raii::Pipeline(device_, vk_pipeline_cache_, pci);
  } catch (const vk::SystemError& err) {
    throw DeviceError(fmt::format("creating pipeline {} on {} failed: {}", shader_name(k.shader),
                                  caps_.name, err.what()));
  }
  if (pipeline_stats_) log_pipeline_stats(k, *e->pipeline);
  return *pipelines_.emplace(std::move(key), std::move(e)).first->second;
}

void VulkanDevice::log_pipeline_stats(const Kernel& k, vk::Pipeline pipeline) const {
  const auto execs = device_.getPipelineExecutablePropertiesKHR(vk::PipelineInfoKHR(pipeline));
  for (uint32_t i = 0; i < execs.size(); ++i) {
    std::string line;
    for (const auto& st :
         device_.getPipelineExecutableStatisticsKHR(vk::PipelineExecutableInfoKHR(pipeline, i)))
      line += fmt::format(" {}={}", std::string_view(st.name.data()), stat_value(st));
    spdlog::info("pipeline {} spec [{}]:{}", shader_name(k.shader), fmt::join(k.spec, ","), line);
  }
}

std::unique_ptr<RecorderBackend> VulkanDevice::make_recorder() { return make_vk_recorder(*this); }

}  // namespace kvz::gpu
