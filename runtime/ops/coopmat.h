// Which cooperative-matrix extension the tensor-core kernels (shaders/*_coopmat.comp, compiled for
// VK_NV_cooperative_matrix and, where the build has a KHR-capable compiler, for
// VK_KHR_cooperative_matrix) use on a device (runtime/ops). The ops ask coopmat_api() once per
// call; their own limits (head_dim, shared memory, workgroup size) come on top.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "runtime/device.h"

namespace kvz {

// kCm2: VK_NV_cooperative_matrix2 (workgroup-scope matrices with tensor loads, the *_cm2
// kernels, where one exists) on top of VK_KHR_cooperative_matrix (every other tensor-core kernel
// runs its KHR variant).
enum class CoopmatApi { kOff, kNv, kKhr, kCm2 };
std::string_view coopmat_api_name(CoopmatApi api);  // "off", "nv", "khr", "cm2"
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

// The api the ops use: a detail::ScopedCoopmatApi override if one is active; else the environment,
// KVZ_COOPMAT=nv|khr|cm2|off (an api the device cannot run means off) or KVZ_NO_COOPMAT=1 (off);
// else cm2 where usable (its prefill attention is faster: bench/RESULTS.md), then KHR (on the
// H200 the same kernels built for KHR ran 10-15% faster than for NV: bench/RESULTS.md), then NV,
// then off. The environment is read once.
CoopmatApi coopmat_api(const DeviceCaps& caps);

// The workgroup size of the *_cm2 kernels, and the device's f16 x f16 -> f32 workgroup-scope shape
// for a workgroup of that many invocations (nullptr: none).
constexpr uint32_t kCm2Workgroup = 256;
const CoopMat2Shape* coopmat2_f16_shape(const DeviceCaps& caps, uint32_t workgroup);

// Subgroup size the pipelines of `api` request (Kernel::subgroup_size), 0 where the device's
// default already is the size the kernels assume (32), and the subgroup size the kernels run with.
uint32_t coopmat_required_subgroup_size(const DeviceCaps& caps, CoopmatApi api);
uint32_t coopmat_subgroup_size(const DeviceCaps& caps, CoopmatApi api);

namespace detail {
// Tests and benchmarks: coopmat_api() returns `api` (off where the device cannot run it) while
// this object lives. Not thread-safe; one at a time.
class ScopedCoopmatApi {
 public:
  explicit ScopedCoopmatApi(CoopmatApi api);
  ~ScopedCoopmatApi();
  ScopedCoopmatApi(const ScopedCoopmatApi&) = delete;
  ScopedCoopmatApi& operator=(const ScopedCoopmatApi&) = delete;

 private:
  std::optional<CoopmatApi> saved_;
};
}  // namespace detail

}  // namespace kvz
