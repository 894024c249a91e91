// Private to runtime/vk: the one place that includes Vulkan-Hpp (RAII flavour, dynamic loader,
// no global default dispatcher). Also declares the VK_KHR_cooperative_matrix types that Debian 12's
// headers (1.3.239) predate.
#pragma once

#include <vulkan/vulkan_raii.hpp>

namespace kvz::gpu {

// VK_KHR_cooperative_matrix (Vulkan registry, extension 507): what the capability probe reads and
// device creation enables.
constexpr VkStructureType kStructCoopMatFeaturesKhr = static_cast<VkStructureType>(1000506000);
constexpr VkStructureType kStructCoopMatPropertiesKhr = static_cast<VkStructureType>(1000506001);
constexpr VkStructureType kStructCoopMatDevicePropertiesKhr =
    static_cast<VkStructureType>(1000506002);
constexpr uint32_t kScopeSubgroupKhr = 3;  // VkScopeKHR
constexpr const char* kExtCoopMatKhr = "VK_KHR_cooperative_matrix";
constexpr const char* kExtCoopMat2Nv = "VK_NV_cooperative_matrix2";
constexpr const char* kExtBf16Khr = "VK_KHR_shader_bfloat16";

struct CoopMatPropertiesKhr {
  VkStructureType sType;
  void* pNext;
  uint32_t MSize, NSize, KSize;
  uint32_t AType, BType, CType, ResultType;  // VkComponentTypeKHR
  VkBool32 saturatingAccumulation;
  uint32_t scope;  // VkScopeKHR
};
// VkPhysicalDeviceCooperativeMatrixFeaturesKHR
struct CoopMatFeaturesKhr {
  VkStructureType sType = kStructCoopMatFeaturesKhr;
  void* pNext = nullptr;
  VkBool32 cooperativeMatrix = VK_FALSE;
  VkBool32 cooperativeMatrixRobustBufferAccess = VK_FALSE;
};
// VkPhysicalDeviceCooperativeMatrixPropertiesKHR
struct CoopMatDevicePropertiesKhr {
  VkStructureType sType = kStructCoopMatDevicePropertiesKhr;
  void* pNext = nullptr;
  VkShaderStageFlags cooperativeMatrixSupportedStages = 0;
};
using PFN_GetCoopMatPropsKhr = VkResult(VKAPI_PTR*)(VkPhysicalDevice, uint32_t*,
                                                    CoopMatPropertiesKhr*);

}  // namespace kvz::gpu
