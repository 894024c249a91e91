// Vulkan Recorder: records dispatches into command buffers, one barrier helper, timeline-semaphore
// submits and timestamp queries (runtime/vk).
#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>

#include "runtime/vk/vk_device.h"

namespace kvz::gpu {
namespace {

// Command buffers in flight per recorder: a prefill chunk or a step decoded one at a time submits
// up to 6 (model/forward.cpp), and generation records a step ahead while one runs
// (Session::generate_tokens).
constexpr uint32_t kRing = 16;
constexpr uint32_t kMaxQueries = 4096;       // timestamps between two timings() calls
constexpr size_t kStagingBytes = 256 << 10;  // first staging buffer of a ring slot (upload())
constexpr size_t kMaxBindings = 16;          // storage buffers of one dispatch

class VkRecorder final : public RecorderBackend {
 public:
  explicit VkRecorder(VulkanDevice& dev) : dev_(dev) {
    const auto& d = dev.dev();
    pool_ = vk::raii::CommandPool(
        d, {vk::CommandPoolCreateFlagBits::eResetCommandBuffer, dev.queue_family()});
    cbs_ = vk::raii::CommandBuffers(d, {*pool_, vk::CommandBufferLevel::ePrimary, kRing});
    vk::SemaphoreTypeCreateInfo ti(vk::SemaphoreType::eTimeline, 0);
    vk::SemaphoreCreateInfo sci;
    sci.pNext = &ti;
    timeline_ = vk::raii::Semaphore(d, sci);
    if (dev.caps().timestamps) {
      queries_ = vk::raii::QueryPool(d, {{}, vk::QueryType::eTimestamp, kMaxQueries});
      reset_queries_pending_ = true;
    }
  }
  ~VkRecorder() override {
    try {
      wait();
    } catch (...) {
    }
  }

  void dispatch(const Kernel& k, std::span<const Tensor> bindings, const void* push,
                uint32_t push_bytes, Grid grid) override {
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
    const auto& caps = dev_.caps();
    KVZ_CHECK(grid.x <= caps.max_workgroup_count[0] && grid.y <= caps.max_workgroup_count[1] &&
                  grid.z <= caps.max_workgroup_count[2],
              "{}: grid {}x{}x{} exceeds the device limit", shader_name(k.shader), grid.x, grid.y,
              grid.z);
    const PipelineEntry& pe = dev_.pipeline(k, static_cast<uint32_t>(bindings.size()), push_bytes);
    auto& cb = current();
    if (concurrent_ < 2) barrier(cb);  // inside a concurrent group only before its first one
    upload_run_.clear();
    if (concurrent_ == 1) concurrent_ = 2;
    // Fixed arrays, not vectors: no heap allocation per dispatch (a decode step records some 400).
    KVZ_CHECK(bindings.size() <= kMaxBindings, "{}: {} bindings", shader_name(k.shader),
              bindings.size());
    std::array<vk::DescriptorBufferInfo, kMaxBindings> infos;
    std::array<vk::WriteDescriptorSet, kMaxBindings> writes;
    for (size_t i = 0; i < bindings.size(); ++i) {
      const BufferView& m = bindings[i].mem();
      size_t range = std::max<size_t>(m.size_bytes, 4);
      if (range > caps.max_storage_buffer_range)
        throw DeviceError(
            fmt::format("{}: binding {} is {} bytes, over maxStorageBufferRange {} of {}",
                        shader_name(k.shader), i, range, caps.max_storage_buffer_range, caps.name));
      KVZ_CHECK(m.handle != 0, "{}: binding {} has no buffer", shader_name(k.shader), i);
      KVZ_CHECK(m.offset_bytes % caps.storage_offset_alignment == 0,
                "{}: binding {} offset {} not aligned to {}", shader_name(k.shader), i,
                m.offset_bytes, caps.storage_offset_alignment);
      infos[i] =
          vk::DescriptorBufferInfo(reinterpret_cast<VkBuffer>(m.handle), m.offset_bytes, range);
      writes[i] = vk::WriteDescriptorSet(nullptr, static_cast<uint32_t>(i), 0, 1,
                                         vk::DescriptorType::eStorageBuffer, nullptr, &infos[i]);
    }
    cb.bindPipeline(vk::PipelineBindPoint::eCompute, *pe.pipeline);
    cb.pushDescriptorSetKHR(vk::PipelineBindPoint::eCompute, *pe.layout, 0,
                            vk::ArrayProxy<const vk::WriteDescriptorSet>(
                                static_cast<uint32_t>(bindings.size()), writes.data()));
    if (push_bytes)
      cb.getDispatcher()->vkCmdPushConstants(*cb, *pe.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                                             push_bytes, push);
    cb.dispatch(grid.x, grid.y, grid.z);
  }

  void copy(const BufferView& src, const BufferView& dst, size_t bytes) override {
    if (!bytes) return;
    auto& cb = current();
    barrier(cb);
    cb.copyBuffer(reinterpret_cast<VkBuffer>(src.handle), reinterpret_cast<VkBuffer>(dst.handle),
                  vk::BufferCopy(src.offset_bytes, dst.offset_bytes, bytes));
  }

  void fill_zero(const BufferView& dst) override {
    if (!dst.size_bytes) return;
    KVZ_CHECK(dst.size_bytes % 4 == 0 && dst.offset_bytes % 4 == 0, "fill_zero needs 4-byte units");
    auto& cb = current();
    barrier(cb);
    cb.fillBuffer(reinterpret_cast<VkBuffer>(dst.handle), dst.offset_bytes, dst.size_bytes, 0);
  }

  void upload(const BufferView& dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    KVZ_CHECK(bytes <= dst.size_bytes, "upload of {} bytes into a {}-byte view", bytes,
              dst.size_bytes);
    auto& cb = current();  // the slot's earlier submission has finished: its staging is free
    Staging& st = staging_[slot_];
    size_t off = (st.used + 15) & ~size_t(15);
    if (st.bufs.empty() || off + bytes > st.bufs.back().size()) {
      st.bufs.push_back(dev_.alloc(std::max(bytes, kStagingBytes), MemoryKind::kUpload));
      off = 0;
    }
    const BufferView& sv = st.bufs.back().view();
    std::memcpy(sv.host + off, src, bytes);
    st.used = off + bytes;
    // Uploads in a row to disjoint ranges need no barrier between them (a decode step writes
    // some 100 small index ranges): one barrier orders the run after earlier work.
    const bool overlaps = std::any_of(upload_run_.begin(), upload_run_.end(), [&](const Range& r) {
      return r.handle == dst.handle && r.begin < dst.offset_bytes + bytes &&
             dst.offset_bytes < r.end;
    });
    if (upload_run_.empty() || overlaps) barrier(cb);
    upload_run_.push_back({dst.handle, dst.offset_bytes, dst.offset_bytes + bytes});
    cb.copyBuffer(reinterpret_cast<VkBuffer>(sv.handle), reinterpret_cast<VkBuffer>(dst.handle),
                  vk::BufferCopy(sv.offset_bytes + off, dst.offset_bytes, bytes));
  }

  void begin_concurrent() override { concurrent_ = 1; }
  void end_concurrent() override { concurrent_ = 0; }  // the next command barriers as usual

  void timestamp(std::string_view label) override {
    if (!*queries_ || labels_.size() >= kMaxQueries) return;
    auto& cb = current();
    barrier(cb);
    cb.writeTimestamp(vk::PipelineStageFlagBits::eAllCommands, *queries_,
                      static_cast<uint32_t>(labels_.size()));
    labels_.emplace_back(label);
  }

  void submit() override {
    if (!recording_) return;
    auto& cb = cbs_[slot_];
    barrier(cb);
    // Results in host-visible memory (e.g. a sampled token id) become readable after the wait.
    using A = vk::AccessFlagBits;
    using P = vk::PipelineStageFlagBits;
    vk::MemoryBarrier host(A::eShaderWrite | A::eTransferWrite, A::eHostRead);
    cb.pipelineBarrier(P::eComputeShader | P::eTransfer, P::eHost, {}, host, {}, {});
    cb.end();
    recording_ = false;
    uint64_t value = ++submitted_;
    vk::TimelineSemaphoreSubmitInfo ts({}, value);
    vk::CommandBuffer raw = *cb;
    vk::Semaphore sem = *timeline_;
    vk::SubmitInfo si({}, {}, raw, sem);
    si.pNext = &ts;
    try {
      dev_.queue().submit(si, {});
    } catch (const vk::SystemError& e) {
      throw DeviceError(fmt::format("queue submit failed on {}: {}", dev_.caps().name, e.what()));
    }
    slot_value_[slot_] = value;
    slot_ = (slot_ + 1) % kRing;
  }

  void wait() override { wait_value(submitted_); }
  uint64_t submitted() const override { return submitted_; }
  void wait_for(uint64_t n) override { wait_value(std::min(n, submitted_)); }

  std::vector<TimedSpan> timings() override {
    std::vector<TimedSpan> out;
    if (!*queries_ || labels_.empty()) return out;
    submit();
    wait();
    auto n = static_cast<uint32_t>(labels_.size());
    auto [res, ticks] = queries_.getResults<uint64_t>(
        0, n, n * sizeof(uint64_t), sizeof(uint64_t),
        vk::QueryResultFlagBits::e64 | vk::QueryResultFlagBits::eWait);
    (void)res;
    for (uint32_t i = 0; i < n; ++i) {
      double ms =
          i ? static_cast<double>(ticks[i] - ticks[i - 1]) * dev_.caps().timestamp_period_ns * 1e-6
            : 0.0;
      out.push_back({labels_[i], ms});
    }
    labels_.clear();
    reset_queries_pending_ = true;
    return out;
  }

 private:
  void wait_value(uint64_t value) {
    if (value == 0) return;
    vk::Semaphore sem = *timeline_;
    vk::SemaphoreWaitInfo wi({}, sem, value);
    if (dev_.dev().waitSemaphores(wi, UINT64_MAX) != vk::Result::eSuccess)
      throw DeviceError("waiting for GPU work failed on " + dev_.caps().name);
  }

  const vk::raii::CommandBuffer& current() {
    if (!recording_) {
      wait_value(slot_value_[slot_]);  // the ring slot's previous use must be finished
      Staging& st = staging_[slot_];   // its staging bytes are consumed: keep the last buffer
      if (st.bufs.size() > 1) st.bufs.erase(st.bufs.begin(), st.bufs.end() - 1);
      st.used = 0;
      auto& cb = cbs_[slot_];
      cb.reset({});
      cb.begin({vk::CommandBufferUsageFlagBits::eOneTimeSubmit});
      if (reset_queries_pending_) {
        cb.resetQueryPool(*queries_, 0, kMaxQueries);
        reset_queries_pending_ = false;
      }
      recording_ = true;
      // Orders this command buffer after everything submitted before it on the queue.
      barrier(cb);
    }
    return cbs_[slot_];
  }

  // The one barrier helper: all prior compute/transfer writes visible to later reads/writes.
  // (A compute-only barrier between dispatches made no measurable difference, so the one
  // barrier kind stays.)
  void barrier(const vk::raii::CommandBuffer& cb) {
    upload_run_.clear();
    using A = vk::AccessFlagBits;
    using P = vk::PipelineStageFlagBits;
    vk::MemoryBarrier mb(A::eShaderWrite | A::eTransferWrite,
                         A::eShaderRead | A::eShaderWrite | A::eTransferRead | A::eTransferWrite);
    cb.pipelineBarrier(P::eComputeShader | P::eTransfer, P::eComputeShader | P::eTransfer, {}, mb,
                       {}, {});
  }

  VulkanDevice& dev_;
  vk::raii::CommandPool pool_ = nullptr;
  vk::raii::CommandBuffers cbs_ = nullptr;
  vk::raii::Semaphore timeline_ = nullptr;
  vk::raii::QueryPool queries_ = nullptr;
  std::array<uint64_t, kRing> slot_value_{};
  std::vector<std::string> labels_;
  uint32_t slot_ = 0;
  uint64_t submitted_ = 0;
  bool recording_ = false;
  bool reset_queries_pending_ = false;
  // Destination ranges of the upload() copies recorded since the last barrier or dispatch.
  struct Range {
    uint64_t handle;
    size_t begin, end;
  };
  std::vector<Range> upload_run_;
  // Host-visible staging of upload() per ring slot, reused once the slot's submission finished.
  struct Staging {
    std::vector<Buffer> bufs;
    size_t used = 0;  // bytes used in bufs.back()
  };
  std::array<Staging, kRing> staging_;
  int concurrent_ = 0;  // 0: every command barriers; 1: group open, nothing yet; 2: in a group
};

}  // namespace

std::unique_ptr<RecorderBackend> make_vk_recorder(VulkanDevice& dev) {
  return std::make_unique<VkRecorder>(dev);
}

}  // namespace kvz::gpu
