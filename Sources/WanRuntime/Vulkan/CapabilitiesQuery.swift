import CVulkan

extension VulkanDevice {
    /// Reads every property and feature the runtime's policies need from a physical device.
    static func queryCapabilities(_ pd: VkPhysicalDevice, instance: VulkanInstance) -> Capabilities {
        var props = VkPhysicalDeviceProperties()
        vkGetPhysicalDeviceProperties(pd, &props)
        var p11 = VkPhysicalDeviceVulkan11Properties()
        p11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES
        var p12 = VkPhysicalDeviceVulkan12Properties()
        p12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES
        var m4 = VkPhysicalDeviceMaintenance4Properties()
        m4.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES
        let api13 = props.apiVersion >= vkMakeAPIVersion(0, 1, 3, 0)
        withUnsafeMutablePointer(to: &m4) { m4p in
            withUnsafeMutablePointer(to: &p12) { p12p in
                if api13 { p12p.pointee.pNext = UnsafeMutableRawPointer(m4p) }
                withUnsafeMutablePointer(to: &p11) { p11p in
                    p11p.pointee.pNext = UnsafeMutableRawPointer(p12p)
                    var p2 = VkPhysicalDeviceProperties2()
                    p2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
                    p2.pNext = UnsafeMutableRawPointer(p11p)
                    vkGetPhysicalDeviceProperties2(pd, &p2)
                }
            }
        }
        var f11 = VkPhysicalDeviceVulkan11Features()
        f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES
        var f12 = VkPhysicalDeviceVulkan12Features()
        f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES
        var f2 = VkPhysicalDeviceFeatures2()
        f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
        withUnsafeMutablePointer(to: &f12) { f12p in
            withUnsafeMutablePointer(to: &f11) { f11p in
                f11p.pointee.pNext = UnsafeMutableRawPointer(f12p)
                f2.pNext = UnsafeMutableRawPointer(f11p)
                vkGetPhysicalDeviceFeatures2(pd, &f2)
                f2.pNext = nil
            }
        }

        var extCount: UInt32 = 0
        vkEnumerateDeviceExtensionProperties(pd, nil, &extCount, nil)
        var exts = [VkExtensionProperties](repeating: VkExtensionProperties(), count: Int(extCount))
        vkEnumerateDeviceExtensionProperties(pd, nil, &extCount, &exts)
        let extNames = exts.map { vkString($0.extensionName) }.sorted()

        var mem = VkPhysicalDeviceMemoryProperties()
        vkGetPhysicalDeviceMemoryProperties(pd, &mem)
        let heapList = vkArray(mem.memoryHeaps, as: VkMemoryHeap.self, count: Int(mem.memoryHeapCount))
        let typeList = vkArray(mem.memoryTypes, as: VkMemoryType.self, count: Int(mem.memoryTypeCount))
        let deviceLocalBit = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue
        let hostVisibleBit = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue
        let localTypes = typeList.filter { $0.propertyFlags & deviceLocalBit != 0 }
        let unified = !localTypes.isEmpty && localTypes.allSatisfy { $0.propertyFlags & hostVisibleBit != 0 }

        var qfCount: UInt32 = 0
        vkGetPhysicalDeviceQueueFamilyProperties(pd, &qfCount, nil)
        var qfs = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(qfCount))
        vkGetPhysicalDeviceQueueFamilyProperties(pd, &qfCount, &qfs)
        let timestamps = qfs.contains { $0.queueFlags & VK_QUEUE_COMPUTE_BIT.rawValue != 0 && $0.timestampValidBits > 0 }

        let ops = p11.subgroupSupportedOperations
        let opNames: [(UInt32, String)] = [
            (VK_SUBGROUP_FEATURE_BASIC_BIT.rawValue, "basic"), (VK_SUBGROUP_FEATURE_VOTE_BIT.rawValue, "vote"),
            (VK_SUBGROUP_FEATURE_ARITHMETIC_BIT.rawValue, "arithmetic"), (VK_SUBGROUP_FEATURE_BALLOT_BIT.rawValue, "ballot"),
            (VK_SUBGROUP_FEATURE_SHUFFLE_BIT.rawValue, "shuffle"),
            (VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT.rawValue, "shuffle-relative"),
            (VK_SUBGROUP_FEATURE_CLUSTERED_BIT.rawValue, "clustered"), (VK_SUBGROUP_FEATURE_QUAD_BIT.rawValue, "quad"),
        ]
        let typeName: [VkPhysicalDeviceType: String] = [
            VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: "discrete", VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: "integrated",
            VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: "virtual", VK_PHYSICAL_DEVICE_TYPE_CPU: "cpu",
        ]
        let wg = vkArray(props.limits.maxComputeWorkGroupSize, as: UInt32.self, count: 3).map(Int.init)
        let wc = vkArray(props.limits.maxComputeWorkGroupCount, as: UInt32.self, count: 3).map(Int.init)

        let hasNV = extNames.contains("VK_NV_cooperative_matrix")
        let hasKHR = extNames.contains("VK_KHR_cooperative_matrix")
        return Capabilities(
            deviceName: vkString(props.deviceName),
            deviceType: typeName[props.deviceType] ?? "other",
            vendorID: props.vendorID, deviceID: props.deviceID, driverVersion: props.driverVersion,
            apiVersion: vkVersionString(props.apiVersion),
            driverName: vkString(p12.driverName) + " " + vkString(p12.driverInfo),
            pipelineCacheUUID: vkArray(props.pipelineCacheUUID, as: UInt8.self, count: 16),
            subgroupSize: Int(p11.subgroupSize),
            subgroupOperations: opNames.filter { ops & $0.0 != 0 }.map(\.1),
            maxComputeSharedMemorySize: Int(props.limits.maxComputeSharedMemorySize),
            maxComputeWorkGroupInvocations: Int(props.limits.maxComputeWorkGroupInvocations),
            maxComputeWorkGroupSize: wg, maxComputeWorkGroupCount: wc,
            maxPushConstantsSize: Int(props.limits.maxPushConstantsSize),
            maxStorageBufferRange: Int(props.limits.maxStorageBufferRange),
            maxMemoryAllocationSize: Int(p11.maxMemoryAllocationSize),
            maxBufferSize: api13 ? Int(m4.maxBufferSize) : Int(p11.maxMemoryAllocationSize),
            minStorageBufferOffsetAlignment: Int(props.limits.minStorageBufferOffsetAlignment),
            shaderFloat16: f12.shaderFloat16 != 0, shaderInt8: f12.shaderInt8 != 0,
            shaderInt16: f2.features.shaderInt16 != 0, shaderInt64: f2.features.shaderInt64 != 0,
            shaderFloat64: f2.features.shaderFloat64 != 0,
            storageBuffer16BitAccess: f11.storageBuffer16BitAccess != 0,
            storageBuffer8BitAccess: f12.storageBuffer8BitAccess != 0,
            bufferDeviceAddress: f12.bufferDeviceAddress != 0, vulkanMemoryModel: f12.vulkanMemoryModel != 0,
            shaderSubgroupExtendedTypes: f12.shaderSubgroupExtendedTypes != 0,
            nvCooperativeMatrix: hasNV, khrCooperativeMatrix: hasKHR,
            nvCooperativeMatrix2: extNames.contains("VK_NV_cooperative_matrix2"),
            khrShaderBFloat16: extNames.contains("VK_KHR_shader_bfloat16"),
            cooperativeMatrix2: extNames.contains("VK_NV_cooperative_matrix2") ? cooperativeMatrix2(pd, instance: instance) : nil,
            cooperativeMatrixShapesNV: hasNV ? nvMatrixShapes(pd, instance: instance) : [],
            cooperativeMatrixShapesKHR: hasKHR ? khrMatrixShapes(pd, instance: instance) : [],
            heaps: heapList.map { (Int($0.size), $0.flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT.rawValue != 0) },
            unifiedMemory: unified,
            timestampSupported: timestamps && props.limits.timestampPeriod > 0,
            timestampPeriodNs: Double(props.limits.timestampPeriod),
            extensions: extNames)
    }

    private static func componentName(_ t: UInt32) -> String {
        switch t {
        case 0: return "f16"
        case 1: return "f32"
        case 2: return "f64"
        case 3: return "s8"
        case 4: return "s16"
        case 5: return "s32"
        case 6: return "s64"
        case 7: return "u8"
        case 8: return "u16"
        case 9: return "u32"
        case 10: return "u64"
        case UInt32(WAN_COMPONENT_TYPE_BFLOAT16_KHR): return "bf16"
        default: return "type\(t)"
        }
    }

    private static func scopeName(_ s: UInt32) -> String {
        switch s {
        case 1: return "device"
        case 2: return "workgroup"
        case 3: return "subgroup"
        case 5: return "queue family"
        default: return "scope\(s)"
        }
    }

    /// VK_NV_cooperative_matrix2's features, limits and flexible-dimension shapes.
    private static func cooperativeMatrix2(_ pd: VkPhysicalDevice, instance: VulkanInstance) -> Capabilities.CooperativeMatrix2 {
        var f = WanPhysicalDeviceCooperativeMatrix2FeaturesNV()
        f.sType = VkStructureType(rawValue: UInt32(WAN_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_FEATURES_NV))
        var p = WanPhysicalDeviceCooperativeMatrix2PropertiesNV()
        p.sType = VkStructureType(rawValue: UInt32(WAN_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_PROPERTIES_NV))
        withUnsafeMutablePointer(to: &f) { fp in
            var f2 = VkPhysicalDeviceFeatures2()
            f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
            f2.pNext = UnsafeMutableRawPointer(fp)
            vkGetPhysicalDeviceFeatures2(pd, &f2)
        }
        withUnsafeMutablePointer(to: &p) { pp in
            var p2 = VkPhysicalDeviceProperties2()
            p2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
            p2.pNext = UnsafeMutableRawPointer(pp)
            vkGetPhysicalDeviceProperties2(pd, &p2)
        }
        var shapes: [Capabilities.FlexibleShape] = []
        if let fp = vkGetInstanceProcAddr(instance.handle, "vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV") {
            let fn = unsafeBitCast(fp, to: WanPFNGetCooperativeMatrixFlexibleDimensionsPropertiesNV?.self)
            var n: UInt32 = 0
            if fn?(pd, &n, nil) == VK_SUCCESS, n > 0 {
                var list = [WanCooperativeMatrixFlexibleDimensionsPropertiesNV](repeating: .init(), count: Int(n))
                for i in list.indices {
                    list[i].sType = VkStructureType(rawValue: UInt32(WAN_STRUCTURE_TYPE_COOPERATIVE_MATRIX_FLEXIBLE_DIMENSIONS_PROPERTIES_NV))
                }
                if fn?(pd, &n, &list) == VK_SUCCESS {
                    shapes = list.prefix(Int(n)).map {
                        .init(mGranularity: Int($0.MGranularity), nGranularity: Int($0.NGranularity), kGranularity: Int($0.KGranularity),
                              a: componentName($0.AType), b: componentName($0.BType), c: componentName($0.CType),
                              result: componentName($0.ResultType), scope: scopeName($0.scope),
                              workgroupInvocations: Int($0.workgroupInvocations))
                    }
                }
            }
        }
        return .init(workgroupScope: f.cooperativeMatrixWorkgroupScope != 0, flexibleDimensions: f.cooperativeMatrixFlexibleDimensions != 0,
                     reductions: f.cooperativeMatrixReductions != 0, conversions: f.cooperativeMatrixConversions != 0,
                     perElementOperations: f.cooperativeMatrixPerElementOperations != 0,
                     tensorAddressing: f.cooperativeMatrixTensorAddressing != 0, blockLoads: f.cooperativeMatrixBlockLoads != 0,
                     maxWorkgroupSize: Int(p.cooperativeMatrixWorkgroupScopeMaxWorkgroupSize),
                     maxDimension: Int(p.cooperativeMatrixFlexibleDimensionsMaxDimension),
                     reservedSharedMemory: Int(p.cooperativeMatrixWorkgroupScopeReservedSharedMemory), shapes: shapes)
    }

    private static func nvMatrixShapes(_ pd: VkPhysicalDevice, instance: VulkanInstance) -> [Capabilities.MatrixShape] {
        guard let fp = vkGetInstanceProcAddr(instance.handle, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV") else { return [] }
        let fn = unsafeBitCast(fp, to: PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV?.self)
        var n: UInt32 = 0
        guard fn?(pd, &n, nil) == VK_SUCCESS, n > 0 else { return [] }
        var list = [VkCooperativeMatrixPropertiesNV](repeating: VkCooperativeMatrixPropertiesNV(), count: Int(n))
        for i in list.indices { list[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV }
        guard fn?(pd, &n, &list) == VK_SUCCESS else { return [] }
        return list.prefix(Int(n)).map {
            .init(m: Int($0.MSize), n: Int($0.NSize), k: Int($0.KSize), a: componentName($0.AType.rawValue),
                  b: componentName($0.BType.rawValue), c: componentName($0.CType.rawValue),
                  result: componentName($0.DType.rawValue), scope: scopeName($0.scope.rawValue))
        }
    }

    private static func khrMatrixShapes(_ pd: VkPhysicalDevice, instance: VulkanInstance) -> [Capabilities.MatrixShape] {
        guard let fp = vkGetInstanceProcAddr(instance.handle, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR") else { return [] }
        let fn = unsafeBitCast(fp, to: WanPFNGetCooperativeMatrixPropertiesKHR?.self)
        var n: UInt32 = 0
        guard fn?(pd, &n, nil) == VK_SUCCESS, n > 0 else { return [] }
        var list = [WanCooperativeMatrixPropertiesKHR](repeating: WanCooperativeMatrixPropertiesKHR(), count: Int(n))
        for i in list.indices { list[i].sType = VkStructureType(rawValue: UInt32(WAN_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR)) }
        guard fn?(pd, &n, &list) == VK_SUCCESS else { return [] }
        return list.prefix(Int(n)).map {
            .init(m: Int($0.MSize), n: Int($0.NSize), k: Int($0.KSize), a: componentName($0.AType),
                  b: componentName($0.BType), c: componentName($0.CType),
                  result: componentName($0.ResultType), scope: scopeName($0.scope))
        }
    }
}
