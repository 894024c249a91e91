// Vulkan-free entry points of runtime/vk used by device selection (runtime/device.cpp).
#pragma once

#include <memory>
#include <vector>

#include "runtime/device.h"

namespace kvz::gpu {

// Capabilities of every Vulkan physical device, in loader order; empty without a loader.
// `t.diagnostics`: the validation layer (for the instance, when this creates it) and the lowered
// storage-buffer range.
std::vector<DeviceCaps> list_vulkan_devices(const Tuning& t);
// Opens physical device `index` of list_vulkan_devices(). Throws DeviceError.
std::unique_ptr<Device> open_vulkan_device(size_t index, const Tuning& t);

}  // namespace kvz::gpu
