// Which cooperative-matrix extension the tensor-core kernels (shaders/*_coopmat.comp, compiled for
// VK_NV_cooperative_matrix and, where the build has a KHR-capable compiler, for
// VK_KHR_cooperative_matrix) use on a device (runtime/ops). The ops ask coopmat_api() once per
// call; their own limits (head_dim, shared memory, workgroup size) come on top.
#pragma once

#include <cstdint>
#include <string_view>

#include "runtime/device.h"

namespace kvz {

// CoopmatApi and coopmat_api_name: runtime/tuning.h.
// Whether the kernels of `api` without a cm2 form run their KHR variants (kKhr and kCm2).
constexpr bool uses_khr_modules(CoopmatApi api) {
  return api == CoopmatApi::kKhr || api == CoopmatApi::kCm2;
}

// Whether the device runs the *_coopmat kernels of `api`: the extension's 16x16x16 f16 x f16 -> f32
// subgroup shape for compute shaders, shaderFloat16, 16-bit storage and the Vulkan memory model
// (the shaders are compiled against it), subgroups of 32 (KHR: by default, or requested through
// subgroup size control), and, for KHR, modules in this build; cm2 adds DeviceCaps::coopmat2_nv, a
// 256-invocation f16 -> f32 workgroup shape and its modules. kOff: always true.
bool coopmat_api_usable(const DeviceCaps& caps, CoopmatApi api);

// The api the ops use: Tuning::coopmat where set (an api the device cannot run means off); else
// cm2 where usable (its prefill attention is faster), then KHR (the same kernels ran faster built
// for KHR than for NV), then NV, then off. bench/RESULTS.md has the measurements.
CoopmatApi coopmat_api(const DeviceCaps& caps, const Tuning& tuning);
inline CoopmatApi coopmat_api(const Device& dev) { return coopmat_api(dev.caps(), dev.tuning()); }

// The workgroup size of the *_cm2 kernels, and the device's f16 x f16 -> f32 workgroup-scope shape
// for a workgroup of that many invocations (nullptr: none).
constexpr uint32_t kCm2Workgroup = 256;
const CoopMat2Shape* coopmat2_f16_shape(const DeviceCaps& caps, uint32_t workgroup);

// Subgroup size the pipelines of `api` request (Kernel::subgroup_size), 0 where the device's
// default already is the size the kernels assume (32), and the subgroup size the kernels run with.
uint32_t coopmat_required_subgroup_size(const DeviceCaps& caps, CoopmatApi api);
uint32_t coopmat_subgroup_size(const DeviceCaps& caps, CoopmatApi api);

}  // namespace kvz
