// Cooperative-matrix api choice for the tensor-core kernels (runtime/ops): capability checks and
// the tuning's preference.
#include "runtime/ops/coopmat.h"

#include <algorithm>
#include <string>

#include "kvz_shaders.h"
#include "runtime/error.h"

namespace kvz {
namespace {

constexpr uint32_t kSubgroup = 32;     // what the attention kernels' lane arithmetic assumes
constexpr uint32_t kMaxSubgroups = 8;  // per workgroup, in the largest coopmat kernel

bool has_f16_shape(const DeviceCaps& caps, const char* ext) {
  return std::any_of(caps.coopmat_shapes.begin(), caps.coopmat_shapes.end(),
                     [&](const CoopMatShape& s) {
                       return s.ext == ext && s.m == 16 && s.n == 16 && s.k == 16 &&
                              s.a_type == "f16" && s.c_type == "f32";
                     });
}

}  // namespace

const CoopMat2Shape* coopmat2_f16_shape(const DeviceCaps& caps, uint32_t workgroup) {
  for (const CoopMat2Shape& s : caps.coopmat2_shapes)
    if (s.workgroup == workgroup && s.a_type == "f16" && s.c_type == "f32") return &s;
  return nullptr;
}

bool coopmat_api_usable(const DeviceCaps& caps, CoopmatApi api) {
  if (api == CoopmatApi::kOff) return true;
  if (!caps.fp16 || !caps.storage16 || !caps.memory_model) return false;
  if (api == CoopmatApi::kNv) return caps.coopmat_nv && has_f16_shape(caps, "NV");
  if (api == CoopmatApi::kCm2 &&
      (!caps.coopmat2_nv || !coopmat2_f16_shape(caps, kCm2Workgroup) ||
       spirv(ShaderId::kMatmulCm2).empty() || !coopmat_api_usable(caps, CoopmatApi::kKhr)))
    return false;
  // KHR: modules exist only where the build found a compiler for them (all or none).
  return caps.coopmat_khr && has_f16_shape(caps, "KHR") && coopmat_subgroup_size(caps, api) != 0 &&
         !spirv(ShaderId::kPagedAttentionCoopmatKhr).empty();
}

uint32_t coopmat_required_subgroup_size(const DeviceCaps& caps, CoopmatApi api) {
  if (!uses_khr_modules(api) || caps.subgroup_size == kSubgroup) return 0;
  const bool can = caps.subgroup_size_control && caps.subgroup_size_min <= kSubgroup &&
                   kSubgroup <= caps.subgroup_size_max &&
                   caps.max_workgroup_subgroups >= kMaxSubgroups;
  return can ? kSubgroup : 0;
}

uint32_t coopmat_subgroup_size(const DeviceCaps& caps, CoopmatApi api) {
  if (uses_khr_modules(api)) {
    if (caps.subgroup_size == kSubgroup) return kSubgroup;
    return coopmat_required_subgroup_size(caps, api);  // 0: 32 is out of reach
  }
  return caps.subgroup_size;
}

CoopmatApi coopmat_api(const DeviceCaps& caps, const Tuning& tuning) {
  if (const auto& a = tuning.coopmat) return coopmat_api_usable(caps, *a) ? *a : CoopmatApi::kOff;
  for (CoopmatApi api : {CoopmatApi::kCm2, CoopmatApi::kKhr, CoopmatApi::kNv})
    if (coopmat_api_usable(caps, api)) return api;
  return CoopmatApi::kOff;
}

}  // namespace kvz
