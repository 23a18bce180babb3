#include <vulkan/vulkan.h>

// VK_KHR_cooperative_matrix arrived in Vulkan headers 1.3.255; Debian 12 ships 1.3.239.
// The one query we need is declared here under our own names (layout as in the Khronos registry).
#define WAN_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR 1000506001
#define WAN_COMPONENT_TYPE_BFLOAT16_KHR 1000141000
typedef struct WanCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize;
    uint32_t NSize;
    uint32_t KSize;
    uint32_t AType;
    uint32_t BType;
    uint32_t CType;
    uint32_t ResultType;
    VkBool32 saturatingAccumulation;
    uint32_t scope;
} WanCooperativeMatrixPropertiesKHR;
typedef VkResult (*WanPFNGetCooperativeMatrixPropertiesKHR)(VkPhysicalDevice, uint32_t *, WanCooperativeMatrixPropertiesKHR *);

// Enabling VK_KHR_cooperative_matrix (VkPhysicalDeviceCooperativeMatrixFeaturesKHR).
#define WAN_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR 1000506000
typedef struct WanPhysicalDeviceCooperativeMatrixFeaturesKHR {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix;
    VkBool32 cooperativeMatrixRobustBufferAccess;
} WanPhysicalDeviceCooperativeMatrixFeaturesKHR;

// VK_NV_cooperative_matrix2 (Vulkan headers 1.3.300): workgroup-scope matrices, flexible dimensions, tensor addressing.
#define WAN_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_FEATURES_NV 1000593000
#define WAN_STRUCTURE_TYPE_COOPERATIVE_MATRIX_FLEXIBLE_DIMENSIONS_PROPERTIES_NV 1000593001
#define WAN_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_PROPERTIES_NV 1000593002
typedef struct WanPhysicalDeviceCooperativeMatrix2FeaturesNV {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrixWorkgroupScope;
    VkBool32 cooperativeMatrixFlexibleDimensions;
    VkBool32 cooperativeMatrixReductions;
    VkBool32 cooperativeMatrixConversions;
    VkBool32 cooperativeMatrixPerElementOperations;
    VkBool32 cooperativeMatrixTensorAddressing;
    VkBool32 cooperativeMatrixBlockLoads;
} WanPhysicalDeviceCooperativeMatrix2FeaturesNV;
typedef struct WanPhysicalDeviceCooperativeMatrix2PropertiesNV {
    VkStructureType sType;
    void *pNext;
    uint32_t cooperativeMatrixWorkgroupScopeMaxWorkgroupSize;
    uint32_t cooperativeMatrixFlexibleDimensionsMaxDimension;
    uint32_t cooperativeMatrixWorkgroupScopeReservedSharedMemory;
} WanPhysicalDeviceCooperativeMatrix2PropertiesNV;
typedef struct WanCooperativeMatrixFlexibleDimensionsPropertiesNV {
    VkStructureType sType;
    void *pNext;
    uint32_t MGranularity;
    uint32_t NGranularity;
    uint32_t KGranularity;
    uint32_t AType;
    uint32_t BType;
    uint32_t CType;
    uint32_t ResultType;
    VkBool32 saturatingAccumulation;
    uint32_t scope;
    uint32_t workgroupInvocations;
} WanCooperativeMatrixFlexibleDimensionsPropertiesNV;
typedef VkResult (*WanPFNGetCooperativeMatrixFlexibleDimensionsPropertiesNV)(VkPhysicalDevice, uint32_t *, WanCooperativeMatrixFlexibleDimensionsPropertiesNV *);
