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

// VK_NV_cooperative_matrix2 (extension 594), likewise newer than Debian 12's headers.
constexpr VkStructureType kStructCoopMat2FeaturesNv = static_cast<VkStructureType>(1000593000);
constexpr VkStructureType kStructCoopMatFlexDimsNv = static_cast<VkStructureType>(1000593001);
constexpr VkStructureType kStructCoopMat2PropertiesNv = static_cast<VkStructureType>(1000593002);
constexpr uint32_t kScopeWorkgroupKhr = 2;  // VkScopeKHR
// VkPhysicalDeviceCooperativeMatrix2FeaturesNV
struct CoopMat2FeaturesNv {
  VkStructureType sType = kStructCoopMat2FeaturesNv;
  void* pNext = nullptr;
  VkBool32 cooperativeMatrixWorkgroupScope = VK_FALSE;
  VkBool32 cooperativeMatrixFlexibleDimensions = VK_FALSE;
  VkBool32 cooperativeMatrixReductions = VK_FALSE;
  VkBool32 cooperativeMatrixConversions = VK_FALSE;
  VkBool32 cooperativeMatrixPerElementOperations = VK_FALSE;
  VkBool32 cooperativeMatrixTensorAddressing = VK_FALSE;
  VkBool32 cooperativeMatrixBlockLoads = VK_FALSE;
};
// VkPhysicalDeviceCooperativeMatrix2PropertiesNV
struct CoopMat2PropertiesNv {
  VkStructureType sType = kStructCoopMat2PropertiesNv;
  void* pNext = nullptr;
  uint32_t cooperativeMatrixWorkgroupScopeMaxWorkgroupSize = 0;
  uint32_t cooperativeMatrixFlexibleDimensionsMaxDimension = 0;
  uint32_t cooperativeMatrixWorkgroupScopeReservedSharedMemory = 0;
};
// VkCooperativeMatrixFlexibleDimensionsPropertiesNV
struct CoopMatFlexDimsNv {
  VkStructureType sType = kStructCoopMatFlexDimsNv;
  void* pNext = nullptr;
  uint32_t MGranularity = 0, NGranularity = 0, KGranularity = 0;
  uint32_t AType = 0, BType = 0, CType = 0, ResultType = 0;  // VkComponentTypeKHR
  VkBool32 saturatingAccumulation = VK_FALSE;
  uint32_t scope = 0;  // VkScopeKHR
  uint32_t workgroupInvocations = 0;
};
using PFN_GetCoopMatFlexDimsNv = VkResult(VKAPI_PTR*)(VkPhysicalDevice, uint32_t*,
                                                      CoopMatFlexDimsNv*);

}  // namespace kvz::gpu
