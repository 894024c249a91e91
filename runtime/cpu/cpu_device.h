// CPU backend device (runtime/cpu): host memory, ops run immediately on the calling thread
// (or the op's own thread pool). The reference for tests and the fallback without Vulkan.
#pragma once

#include <memory>

#include "runtime/device.h"
#include "runtime/recorder.h"

namespace kvz::cpu {

std::unique_ptr<Device> make_cpu_device();
DeviceCaps cpu_caps();

}  // namespace kvz::cpu
