// Vulkan instance, validation messenger and capability probe (runtime/vk).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/vk/vk_device.h"
#include "runtime/vk/vk_open.h"

namespace kvz::gpu {
namespace {

VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                             VkDebugUtilsMessageTypeFlagsEXT,
                                             const VkDebugUtilsMessengerCallbackDataEXT* data,
                                             void* user) {
  if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
    static_cast<Instance*>(user)->validation_messages++;
    std::fprintf(stderr, "[vulkan validation] %s\n", data->pMessage);
  }
  return VK_FALSE;
}

bool has_layer(const vk::raii::Context& ctx, const char* name) {
  for (const auto& l : ctx.enumerateInstanceLayerProperties())
    if (std::strcmp(l.layerName, name) == 0) return true;
  return false;
}

bool has_instance_ext(const vk::raii::Context& ctx, const char* name) {
  for (const auto& e : ctx.enumerateInstanceExtensionProperties(nullptr))
    if (std::strcmp(e.extensionName, name) == 0) return true;
  return false;
}

std::unique_ptr<Instance> create_instance(bool want_validation) {
  auto inst = std::make_unique<Instance>();
  std::vector<const char*> layers, exts;
  if (want_validation) {
    if (has_layer(inst->context, "VK_LAYER_KHRONOS_validation") &&
        has_instance_ext(inst->context, VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
      layers.push_back("VK_LAYER_KHRONOS_validation");
      exts.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
      inst->validation = true;
      for (const auto& l : inst->context.enumerateInstanceLayerProperties())
        if (std::strcmp(l.layerName, "VK_LAYER_KHRONOS_validation") == 0)
          inst->validation_layer_version = l.specVersion;
    } else {
      std::fprintf(stderr,
                   "kvzip: KVZ_VALIDATION set but VK_LAYER_KHRONOS_validation is missing\n");
    }
  }
  // Vulkan 1.3 where the loader has it: the cm2 kernels are SPIR-V 1.6 modules (glslang compiles
  // GL_NV_cooperative_matrix2 for nothing older); everything else needs 1.2.
  inst->api_version = inst->context.enumerateInstanceVersion() >= VK_API_VERSION_1_3
                          ? VK_API_VERSION_1_3
                          : VK_API_VERSION_1_2;
  vk::ApplicationInfo app("kvzip-vk", 1, "kvzip-vk", 1, inst->api_version);
  vk::InstanceCreateInfo ci({}, &app, layers, exts);
  inst->instance = vk::raii::Instance(inst->context, ci);
  if (inst->validation) {
    using S = vk::DebugUtilsMessageSeverityFlagBitsEXT;
    using T = vk::DebugUtilsMessageTypeFlagBitsEXT;
    vk::DebugUtilsMessengerCreateInfoEXT mi({}, S::eWarning | S::eError,
                                            T::eGeneral | T::eValidation | T::ePerformance,
                                            &on_validation, inst.get());
    inst->messenger.emplace(inst->instance, mi);
  }
  return inst;
}

std::string version_str(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) +
         "." + std::to_string(VK_API_VERSION_PATCH(v));
}

const char* component_name(uint32_t t) {
  switch (t) {
    case 0:
      return "f16";
    case 1:
      return "f32";
    case 2:
      return "f64";
    case 3:
      return "s8";
    case 4:
      return "s16";
    case 5:
      return "s32";
    case 7:
      return "u8";
    case 10:
      return "u32";
    case 1000141000:
      return "bf16";
    default:
      return "other";
  }
}

void probe_coopmat(const vk::raii::PhysicalDevice& pd, DeviceCaps& caps) {
  if (caps.coopmat_khr) {
    auto fn = reinterpret_cast<PFN_GetCoopMatPropsKhr>(pd.getDispatcher()->vkGetInstanceProcAddr(
        *instance().instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR"));
    uint32_t n = 0;
    if (fn && fn(*pd, &n, nullptr) == VK_SUCCESS && n) {
      std::vector<CoopMatPropertiesKhr> props(n);
      for (auto& p : props) p = {kStructCoopMatPropertiesKhr, nullptr, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      fn(*pd, &n, props.data());
      for (const auto& p : props)
        if (p.scope == kScopeSubgroupKhr && p.BType == p.AType && p.ResultType == p.CType)
          caps.coopmat_shapes.push_back(
              {p.MSize, p.NSize, p.KSize, component_name(p.AType), component_name(p.CType), "KHR"});
    }
  }
  if (caps.coopmat_nv) {  // both where both exist: the NV kernels check the NV list
    for (const auto& p : pd.getCooperativeMatrixPropertiesNV())
      caps.coopmat_shapes.push_back({p.MSize, p.NSize, p.KSize,
                                     component_name(static_cast<uint32_t>(p.AType)),
                                     component_name(static_cast<uint32_t>(p.CType)), "NV"});
  }
}

// The feature and property structs of an extension newer than Debian 12's headers (ours, in
// runtime/vk/vk_common.h), filled through the *2 queries.
template <class Features, class Properties>
void query_ext(const vk::raii::PhysicalDevice& pd, Features& feat, Properties& props) {
  VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &feat, {}};
  pd.getDispatcher()->vkGetPhysicalDeviceFeatures2(static_cast<VkPhysicalDevice>(*pd), &f2);
  VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &props, {}};
  pd.getDispatcher()->vkGetPhysicalDeviceProperties2(static_cast<VkPhysicalDevice>(*pd), &p2);
}

// VK_NV_cooperative_matrix2 counts with the features the *_cm2 kernels use (workgroup scope,
// flexible dimensions, tensor addressing, per-element operations) on top of usable KHR cooperative
// matrices; its workgroup-scope f16 shapes are listed.
void probe_coopmat2(const vk::raii::PhysicalDevice& pd, DeviceCaps& caps) {
  if (!caps.coopmat2_nv) return;
  caps.coopmat2_nv = false;
  // SPIR-V 1.6 (the modules) needs Vulkan 1.3 on both the instance and the device.
  if (!caps.coopmat_khr || instance().api_version < VK_API_VERSION_1_3 ||
      pd.getProperties().apiVersion < VK_API_VERSION_1_3)
    return;
  CoopMat2FeaturesNv feat;
  CoopMat2PropertiesNv props;
  query_ext(pd, feat, props);
  if (!feat.cooperativeMatrixWorkgroupScope || !feat.cooperativeMatrixFlexibleDimensions ||
      !feat.cooperativeMatrixTensorAddressing || !feat.cooperativeMatrixPerElementOperations)
    return;
  auto fn = reinterpret_cast<PFN_GetCoopMatFlexDimsNv>(pd.getDispatcher()->vkGetInstanceProcAddr(
      *instance().instance, "vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV"));
  uint32_t n = 0;
  if (!fn || fn(*pd, &n, nullptr) != VK_SUCCESS || n == 0) return;
  std::vector<CoopMatFlexDimsNv> dims(n);
  if (fn(*pd, &n, dims.data()) != VK_SUCCESS) return;
  for (const auto& d : dims)
    if (d.scope == kScopeWorkgroupKhr && d.AType == d.BType && d.CType == d.ResultType)
      caps.coopmat2_shapes.push_back({d.MGranularity, d.NGranularity, d.KGranularity,
                                      d.workgroupInvocations, component_name(d.AType),
                                      component_name(d.CType)});
  caps.coopmat2_max_dimension = props.cooperativeMatrixFlexibleDimensionsMaxDimension;
  caps.coopmat2_nv = !caps.coopmat2_shapes.empty();
}

// VK_KHR_cooperative_matrix counts only with its feature on and compute-stage support (the
// structs are ours: Debian 12's headers predate the extension).
bool khr_coopmat_usable(const vk::raii::PhysicalDevice& pd) {
  CoopMatFeaturesKhr feat;
  CoopMatDevicePropertiesKhr props;
  query_ext(pd, feat, props);
  return feat.cooperativeMatrix && (props.cooperativeMatrixSupportedStages &
                                    static_cast<VkShaderStageFlags>(VK_SHADER_STAGE_COMPUTE_BIT));
}

// VK_EXT_subgroup_size_control: range of requestable sizes, usable for compute with full
// subgroups (device creation enables the extension and both features where this holds).
void probe_subgroup_size_control(const vk::raii::PhysicalDevice& pd, DeviceCaps& c) {
  auto f = pd.getFeatures2<vk::PhysicalDeviceFeatures2,
                           vk::PhysicalDeviceSubgroupSizeControlFeaturesEXT>();
  auto p = pd.getProperties2<vk::PhysicalDeviceProperties2,
                             vk::PhysicalDeviceSubgroupSizeControlPropertiesEXT>();
  const auto& ff = f.get<vk::PhysicalDeviceSubgroupSizeControlFeaturesEXT>();
  const auto& pp = p.get<vk::PhysicalDeviceSubgroupSizeControlPropertiesEXT>();
  c.subgroup_size_min = pp.minSubgroupSize;
  c.subgroup_size_max = pp.maxSubgroupSize;
  c.max_workgroup_subgroups = pp.maxComputeWorkgroupSubgroups;
  c.subgroup_size_control =
      ff.subgroupSizeControl && ff.computeFullSubgroups &&
      static_cast<bool>(pp.requiredSubgroupSizeStages & vk::ShaderStageFlagBits::eCompute);
}

}  // namespace

Instance& instance(bool validation) {
  // Deliberately never destroyed: tearing the instance (and unloading the loader) down during
  // static destruction races the NVIDIA driver's own exit handlers and crashes at exit.
  static Instance* inst = nullptr;
  static std::string failure;
  if (!inst && failure.empty()) {
    try {
      inst = create_instance(validation).release();
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  if (!inst) throw DeviceError("Vulkan is unavailable: " + failure);
  return *inst;
}

DeviceCaps probe_caps(const vk::raii::PhysicalDevice& pd, uint64_t max_storage_buffer_range) {
  DeviceCaps c;
  auto props2 =
      pd.getProperties2<vk::PhysicalDeviceProperties2, vk::PhysicalDeviceSubgroupProperties,
                        vk::PhysicalDeviceDriverProperties>();
  const auto& p = props2.get<vk::PhysicalDeviceProperties2>().properties;
  const auto& sg = props2.get<vk::PhysicalDeviceSubgroupProperties>();
  const auto& drv = props2.get<vk::PhysicalDeviceDriverProperties>();
  c.name = p.deviceName.data();
  c.driver = std::string(drv.driverName.data()) + " " + drv.driverInfo.data();
  c.api_version = version_str(p.apiVersion);
  c.vendor_id = p.vendorID;
  switch (p.deviceType) {
    case vk::PhysicalDeviceType::eDiscreteGpu:
      c.type = "discrete";
      break;
    case vk::PhysicalDeviceType::eIntegratedGpu:
      c.type = "integrated";
      break;
    case vk::PhysicalDeviceType::eVirtualGpu:
      c.type = "virtual";
      break;
    case vk::PhysicalDeviceType::eCpu:
      c.type = "cpu";
      break;
    default:
      c.type = "other";
  }
  c.software = p.deviceType == vk::PhysicalDeviceType::eCpu;
  c.subgroup_size = sg.subgroupSize;
  c.subgroup_arith =
      static_cast<bool>(sg.supportedOperations & vk::SubgroupFeatureFlagBits::eArithmetic) &&
      static_cast<bool>(sg.supportedStages & vk::ShaderStageFlagBits::eCompute);
  c.subgroup_shuffle =
      static_cast<bool>(sg.supportedOperations & vk::SubgroupFeatureFlagBits::eShuffle) &&
      static_cast<bool>(sg.supportedStages & vk::ShaderStageFlagBits::eCompute);
  c.shared_memory_bytes = p.limits.maxComputeSharedMemorySize;
  c.max_workgroup_invocations = p.limits.maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; ++i) c.max_workgroup_count[i] = p.limits.maxComputeWorkGroupCount[i];
  c.max_storage_buffer_range = p.limits.maxStorageBufferRange;
  // A lowered limit (KVZ_MAX_STORAGE_BUFFER_RANGE) lets tests on any device exercise the
  // row-chunked bindings of weights above it (runtime/ops/binding_chunks.h).
  if (max_storage_buffer_range)
    c.max_storage_buffer_range =
        std::min<uint64_t>(c.max_storage_buffer_range, max_storage_buffer_range);
  c.storage_offset_alignment = static_cast<uint32_t>(p.limits.minStorageBufferOffsetAlignment);
  c.timestamp_period_ns = p.limits.timestampPeriod;
  auto maint3 =
      pd.getProperties2<vk::PhysicalDeviceProperties2, vk::PhysicalDeviceMaintenance3Properties>();
  c.max_alloc_bytes =
      maint3.get<vk::PhysicalDeviceMaintenance3Properties>().maxMemoryAllocationSize;
  auto mem = pd.getMemoryProperties();
  for (uint32_t i = 0; i < mem.memoryHeapCount; ++i)
    if (mem.memoryHeaps[i].flags & vk::MemoryHeapFlagBits::eDeviceLocal)
      c.device_local_bytes = std::max<uint64_t>(c.device_local_bytes, mem.memoryHeaps[i].size);

  auto feats = pd.getFeatures2<vk::PhysicalDeviceFeatures2, vk::PhysicalDeviceVulkan11Features,
                               vk::PhysicalDeviceVulkan12Features>();
  const auto& f11 = feats.get<vk::PhysicalDeviceVulkan11Features>();
  const auto& f12 = feats.get<vk::PhysicalDeviceVulkan12Features>();
  c.fp16 = f12.shaderFloat16;
  c.int8 = f12.shaderInt8;
  c.storage8 = f12.storageBuffer8BitAccess;
  c.storage16 = f11.storageBuffer16BitAccess;
  c.memory_model = f12.vulkanMemoryModel;
  bool sm_builtins = false, amd_cores = false;
  for (const auto& e : pd.enumerateDeviceExtensionProperties(nullptr)) {
    std::string n = e.extensionName.data();
    if (n == VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME) c.int8_dot = true;
    if (n == kExtCoopMatKhr) c.coopmat_khr = true;
    if (n == VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME) c.coopmat_nv = true;
    if (n == kExtCoopMat2Nv) c.coopmat2_nv = true;
    if (n == kExtBf16Khr) c.bf16 = true;
    if (n == VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME) c.subgroup_size_control = true;
    if (n == VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME) sm_builtins = true;
    if (n == VK_AMD_SHADER_CORE_PROPERTIES_EXTENSION_NAME) amd_cores = true;
  }
  if (sm_builtins) {
    c.compute_units = pd.getProperties2<vk::PhysicalDeviceProperties2,
                                        vk::PhysicalDeviceShaderSMBuiltinsPropertiesNV>()
                          .get<vk::PhysicalDeviceShaderSMBuiltinsPropertiesNV>()
                          .shaderSMCount;
  } else if (amd_cores) {
    const auto a = pd.getProperties2<vk::PhysicalDeviceProperties2,
                                     vk::PhysicalDeviceShaderCorePropertiesAMD>()
                       .get<vk::PhysicalDeviceShaderCorePropertiesAMD>();
    c.compute_units =
        a.shaderEngineCount * a.shaderArraysPerEngineCount * a.computeUnitsPerShaderArray;
  }
  if (c.subgroup_size_control) probe_subgroup_size_control(pd, c);
  // A validation layer older than VK_KHR_cooperative_matrix (Vulkan 1.3.255; Debian 12 ships
  // 1.3.239) reports its structures and SPIR-V as errors: under such a layer the KHR path is off
  // (the NV one, where present, still runs and is validated).
  constexpr uint32_t kCoopMatKhrHeader = VK_MAKE_API_VERSION(0, 1, 3, 255);
  if (c.coopmat_khr && instance().validation &&
      instance().validation_layer_version < kCoopMatKhrHeader) {
    static const bool noted = [] {
      std::fprintf(stderr,
                   "kvzip: VK_KHR_cooperative_matrix left off: the validation layer predates it\n");
      return true;
    }();
    (void)noted;
    c.coopmat_khr = false;
  }
  if (c.coopmat_khr) c.coopmat_khr = khr_coopmat_usable(pd);
  // Integer dot products: the extension (the instance asks for Vulkan 1.2, so the 1.3 core feature
  // is reached through it; runtime/vk/vk_device.cpp enables both) and its feature.
  if (c.int8_dot) {
    auto dot = pd.getFeatures2<vk::PhysicalDeviceFeatures2,
                               vk::PhysicalDeviceShaderIntegerDotProductFeatures>();
    c.int8_dot =
        dot.get<vk::PhysicalDeviceShaderIntegerDotProductFeatures>().shaderIntegerDotProduct;
  }
  if (c.coopmat_nv) {  // the extension alone is not enough: the feature and compute-stage support
    auto nv = pd.getFeatures2<vk::PhysicalDeviceFeatures2,
                              vk::PhysicalDeviceCooperativeMatrixFeaturesNV>();
    auto nvp = pd.getProperties2<vk::PhysicalDeviceProperties2,
                                 vk::PhysicalDeviceCooperativeMatrixPropertiesNV>();
    c.coopmat_nv = nv.get<vk::PhysicalDeviceCooperativeMatrixFeaturesNV>().cooperativeMatrix &&
                   static_cast<bool>(nvp.get<vk::PhysicalDeviceCooperativeMatrixPropertiesNV>()
                                         .cooperativeMatrixSupportedStages &
                                     vk::ShaderStageFlagBits::eCompute);
  }
  auto qfs = pd.getQueueFamilyProperties();
  for (const auto& q : qfs)
    if ((q.queueFlags & vk::QueueFlagBits::eCompute) && q.timestampValidBits > 0)
      c.timestamps = true;
  probe_coopmat(pd, c);
  probe_coopmat2(pd, c);
  return c;
}

namespace {
std::vector<vk::raii::PhysicalDevice> physical_devices(bool validation) {
  try {
    return vk::raii::PhysicalDevices(instance(validation).instance);
  } catch (const DeviceError&) {
    return {};
  } catch (const vk::SystemError&) {
    return {};
  }
}
}  // namespace

std::vector<DeviceCaps> list_vulkan_devices(const Tuning& t) {
  std::vector<DeviceCaps> out;
  for (const auto& pd : physical_devices(t.diagnostics.validation))
    out.push_back(probe_caps(pd, t.diagnostics.max_storage_buffer_range));
  return out;
}

std::unique_ptr<Device> open_vulkan_device(size_t index, const Tuning& t) {
  auto pds = physical_devices(t.diagnostics.validation);
  if (index >= pds.size()) throw DeviceError(fmt::format("no Vulkan device {}", index));
  try {
    return std::make_unique<VulkanDevice>(instance(), pds[index], t.diagnostics);
  } catch (const vk::SystemError& e) {
    throw DeviceError(fmt::format("opening Vulkan device {} failed: {}", index, e.what()));
  }
}

}  // namespace kvz::gpu
