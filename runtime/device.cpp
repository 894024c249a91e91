// Device selection (KVZIP_DEVICE) and its tuning, Buffer ownership and Recorder helpers (runtime/).
#include "runtime/device.h"

#include <cstdlib>
#include <utility>

#include "runtime/cpu/cpu_device.h"
#include "runtime/recorder.h"
#include "runtime/vk/vk_open.h"

namespace kvz {

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    reset();
    owner_ = std::exchange(o.owner_, nullptr);
    view_ = std::exchange(o.view_, {});
    token_ = std::exchange(o.token_, 0);
  }
  return *this;
}

void Buffer::reset() noexcept {
  if (owner_) owner_->release(view_, token_);
  owner_ = nullptr;
  view_ = {};
}

Buffer Device::alloc_upload(const void* src, size_t bytes) {
  Buffer b = alloc(bytes);
  upload(b.view(), src, bytes);
  return b;
}

void Recorder::copy(const Tensor& src, const Tensor& dst) {
  KVZ_CHECK(src.nbytes() == dst.nbytes(), "copy {} -> {}", src.shape_str(), dst.shape_str());
  impl_->copy(src.mem(), dst.mem(), src.nbytes());
}

namespace {

int type_rank(const std::string& t) {
  if (t == "discrete") return 0;
  if (t == "integrated") return 1;
  if (t == "virtual") return 2;
  if (t == "other") return 3;
  return 4;  // cpu (lavapipe)
}

}  // namespace

std::vector<DeviceCaps> list_devices() {
  std::vector<DeviceCaps> out = gpu::list_vulkan_devices(resolve_tuning({}, read_tuning_env()));
  out.push_back(cpu::cpu_caps());
  return out;
}

namespace {

// The device `sel` names, before its tuning is set. `diag` carries the diagnostic switches the
// Vulkan layer needs while it opens the device.
std::unique_ptr<Device> open_selected(std::string sel, const Tuning& diag) {
  if (sel.empty()) sel = device_selector_from_env();
  if (sel == "cpu") return cpu::make_cpu_device();
  auto devs = gpu::list_vulkan_devices(diag);
  if (sel.empty()) {
    int best = -1, best_rank = 99;
    for (size_t i = 0; i < devs.size(); ++i) {
      int r = type_rank(devs[i].type);
      if (r < best_rank) best = static_cast<int>(i), best_rank = r;
    }
    if (best < 0) return cpu::make_cpu_device();
    return gpu::open_vulkan_device(static_cast<size_t>(best), diag);
  }
  char* end = nullptr;
  long idx = std::strtol(sel.c_str(), &end, 10);
  if (end && *end == '\0') {
    if (idx < 0 || static_cast<size_t>(idx) >= devs.size())
      throw DeviceError(
          fmt::format("KVZIP_DEVICE={}: there are {} Vulkan devices", sel, devs.size()));
    return gpu::open_vulkan_device(static_cast<size_t>(idx), diag);
  }
  for (size_t i = 0; i < devs.size(); ++i)
    if (devs[i].name.find(sel) != std::string::npos) return gpu::open_vulkan_device(i, diag);
  throw DeviceError(fmt::format("KVZIP_DEVICE={}: no device name contains it", sel));
}

}  // namespace

std::unique_ptr<Device> open_device(std::string_view selector) {
  const TuningEnv env = read_tuning_env();  // the environment's overrides, validated once
  std::unique_ptr<Device> dev = open_selected(std::string(selector), env.apply({}));
  dev->set_tuning(resolve_tuning(dev->caps(), env));
  return dev;
}

}  // namespace kvz
