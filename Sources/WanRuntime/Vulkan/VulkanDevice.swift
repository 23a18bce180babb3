import CVulkan
import Foundation

/// How to open a Vulkan device.
public struct VulkanOptions: Sendable {
    /// Route uploads and downloads through host-visible staging memory even when tensor memory is
    /// mappable (the path discrete GPUs take); also set by `WAN_VK_FORCE_STAGING=1`.
    public var forceStaging: Bool
    /// Where the pipeline cache file lives (default `$WAN_CACHE_DIR`, else `$XDG_CACHE_HOME/wan`,
    /// else `~/.cache/wan`; `WAN_PIPELINE_CACHE=0` disables it).
    public var pipelineCacheDirectory: URL?
    /// At most this many bytes of device-local memory are reserved from the driver (host-resident tensors and
    /// staging buffers do not count); an allocation beyond it fails with `RuntimeError.outOfDeviceMemory` as a full device
    /// would (`--vram-budget`). Nil: the driver's limits only.
    public var memoryBudget: Int?

    public init(forceStaging: Bool = ProcessInfo.processInfo.environment["WAN_VK_FORCE_STAGING"] == "1",
                pipelineCacheDirectory: URL? = nil, memoryBudget: Int? = nil) {
        self.forceStaging = forceStaging
        self.pipelineCacheDirectory = pipelineCacheDirectory
        self.memoryBudget = memoryBudget
    }
}

/// An opened Vulkan device: logical device, one compute queue, memory allocator, pipelines (with an
/// on-disk pipeline cache) and the capabilities read once at open.
public final class VulkanDevice: @unchecked Sendable {
    public let instance: VulkanInstance
    public let index: Int
    public let capabilities: Capabilities
    let physical: VkPhysicalDevice
    let handle: VkDevice
    let queue: VkQueue
    let queueFamily: UInt32
    let pipelineLayout: VkPipelineLayout
    let allocator: VulkanAllocator
    let pipelineCache: VkPipelineCache?
    /// The pipeline cache file (nil when disabled).
    public let pipelineCacheURL: URL?
    /// Serialises queue submission and the pipeline table.
    let lock = NSLock()
    private var pipelines: [PipelineKey: VkPipeline] = [:]
    private var modules: [String: VkShaderModule] = [:]
    /// Where NV accumulator fragments hold NVIDIA's mma rows, the element bit that picks a lane's lower row
    /// (`CoopmatLayoutProbe`; the register-softmax attention needs those rows); nil otherwise. Probed once when
    /// `Device.vulkan` opens the device, before it is shared.
    var accumulatorRowBit: Int?
    /// Push-constant bytes every pipeline layout reserves (the Vulkan-guaranteed minimum).
    static let pushConstantSize = 128

    struct PipelineKey: Hashable {
        let shader: String
        let constants: [UInt32]
    }

    /// Opens physical device `index` of the instance.
    public init(index: Int, instance: VulkanInstance, options: VulkanOptions = VulkanOptions()) throws {
        self.instance = instance
        self.index = index
        let devices = try instance.physicalDevices()
        guard index >= 0 && index < devices.count else {
            throw RuntimeError.noSuchDevice("vulkan:\(index) (\(devices.count) Vulkan device(s) present)")
        }
        let pd = devices[index]
        physical = pd
        var caps = VulkanDevice.queryCapabilities(pd, instance: instance)
        let name = caps.deviceName
        for (ok, feature) in [
            (caps.bufferDeviceAddress, "bufferDeviceAddress"), (caps.shaderInt64, "shaderInt64"),
            (caps.shaderInt16, "shaderInt16"), (caps.shaderInt8, "shaderInt8"),
            (caps.storageBuffer16BitAccess, "storageBuffer16BitAccess"),
            (caps.storageBuffer8BitAccess, "storageBuffer8BitAccess"),
        ] where !ok {
            throw RuntimeError.missingFeature(device: name, feature: feature)
        }

        // Queue family: compute-capable, preferring one with timestamps.
        var qfCount: UInt32 = 0
        vkGetPhysicalDeviceQueueFamilyProperties(pd, &qfCount, nil)
        var qfs = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(qfCount))
        vkGetPhysicalDeviceQueueFamilyProperties(pd, &qfCount, &qfs)
        let computeFamilies = qfs.indices.filter { qfs[$0].queueFlags & VK_QUEUE_COMPUTE_BIT.rawValue != 0 }
        guard let family = computeFamilies.first(where: { qfs[$0].timestampValidBits > 0 }) ?? computeFamilies.first else {
            throw RuntimeError.missingFeature(device: name, feature: "a compute queue")
        }
        queueFamily = UInt32(family)

        // Logical device with the features the shaders use.
        var f12 = VkPhysicalDeviceVulkan12Features()
        f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES
        f12.bufferDeviceAddress = VkBool32(VK_TRUE)
        f12.storageBuffer8BitAccess = VkBool32(VK_TRUE)
        f12.shaderInt8 = VkBool32(VK_TRUE)
        f12.shaderFloat16 = VkBool32(caps.shaderFloat16 ? VK_TRUE : VK_FALSE)
        f12.shaderSubgroupExtendedTypes = VkBool32(caps.shaderSubgroupExtendedTypes ? VK_TRUE : VK_FALSE)
        f12.vulkanMemoryModel = VkBool32(caps.vulkanMemoryModel ? VK_TRUE : VK_FALSE)
        var f11 = VkPhysicalDeviceVulkan11Features()
        f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES
        f11.storageBuffer16BitAccess = VkBool32(VK_TRUE)
        var f2 = VkPhysicalDeviceFeatures2()
        f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
        f2.features.shaderInt64 = VkBool32(VK_TRUE)
        f2.features.shaderInt16 = VkBool32(VK_TRUE)
        f2.features.shaderFloat64 = VkBool32(caps.shaderFloat64 ? VK_TRUE : VK_FALSE)
        var dev: VkDevice?
        // VK_KHR_cooperative_matrix only when this build has its shaders; should a driver refuse it, the device
        // is created without it (the KHR shaders are then reported unavailable, the NV ones still run).
        // VK_NV_cooperative_matrix2 likewise (it builds on the KHR extension): when refused, the device is created
        // without it, then without both.
        let wantKHR = CoopmatAPI.enableKHR(caps)
        let wantCM2 = wantKHR && GEMMCoopmat2.enable(caps)
        var result = VulkanDevice.createDevice(pd, family: UInt32(family), caps: caps, khr: wantKHR, cm2: wantCM2,
                                               f2: &f2, f11: &f11, f12: &f12, device: &dev)
        caps.cooperativeMatrix2Enabled = wantCM2 && result == VK_SUCCESS
        if result != VK_SUCCESS && wantCM2 {
            result = VulkanDevice.createDevice(pd, family: UInt32(family), caps: caps, khr: wantKHR, cm2: false,
                                               f2: &f2, f11: &f11, f12: &f12, device: &dev)
        }
        if result != VK_SUCCESS && wantKHR {
            result = VulkanDevice.createDevice(pd, family: UInt32(family), caps: caps, khr: false, cm2: false,
                                               f2: &f2, f11: &f11, f12: &f12, device: &dev)
            if result == VK_SUCCESS { caps.khrCooperativeMatrix = false }
        }
        capabilities = caps
        try vkCheck(result, "vkCreateDevice(\(name))")
        guard let dev else { throw RuntimeError.vulkan(call: "vkCreateDevice", result: -3) }
        handle = dev
        var q: VkQueue?
        vkGetDeviceQueue(dev, UInt32(family), 0, &q)
        guard let q else { throw RuntimeError.vulkan(call: "vkGetDeviceQueue", result: -3) }
        queue = q

        var range = VkPushConstantRange()
        range.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT.rawValue
        range.offset = 0
        range.size = UInt32(VulkanDevice.pushConstantSize)
        var layout: VkPipelineLayout?
        let lr: VkResult = withUnsafePointer(to: &range) { rp in
            var lci = VkPipelineLayoutCreateInfo()
            lci.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO
            lci.pushConstantRangeCount = 1
            lci.pPushConstantRanges = rp
            return vkCreatePipelineLayout(dev, &lci, nil, &layout)
        }
        try vkCheck(lr, "vkCreatePipelineLayout")
        pipelineLayout = layout!

        allocator = try VulkanAllocator(device: dev, physical: pd, capabilities: caps, forceStaging: options.forceStaging,
                                        budget: options.memoryBudget)
        (pipelineCache, pipelineCacheURL) = VulkanDevice.openPipelineCache(device: dev, caps: caps, directory: options.pipelineCacheDirectory)
    }

    /// vkCreateDevice with the feature structs (chained here), VK_NV_cooperative_matrix when present,
    /// VK_KHR_cooperative_matrix when `khr` and VK_NV_cooperative_matrix2 (what the `*_cm2.comp` shaders use) when `cm2`, with maintenance4 for their SPIR-V 1.6.
    private static func createDevice(_ pd: VkPhysicalDevice, family: UInt32, caps: Capabilities, khr: Bool, cm2: Bool,
                                     f2: inout VkPhysicalDeviceFeatures2, f11: inout VkPhysicalDeviceVulkan11Features,
                                     f12: inout VkPhysicalDeviceVulkan12Features, device: inout VkDevice?) -> VkResult {
        var enabledExts: [String] = []
        let nv = caps.extensions.contains("VK_NV_cooperative_matrix")
        if nv { enabledExts.append("VK_NV_cooperative_matrix") }
        if khr { enabledExts.append("VK_KHR_cooperative_matrix") }
        if cm2 { enabledExts.append("VK_NV_cooperative_matrix2") }
        var coop = VkPhysicalDeviceCooperativeMatrixFeaturesNV()
        coop.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV
        coop.cooperativeMatrix = VkBool32(VK_TRUE)
        var coopKHR = WanPhysicalDeviceCooperativeMatrixFeaturesKHR()
        coopKHR.sType = VkStructureType(rawValue: UInt32(WAN_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR))
        coopKHR.cooperativeMatrix = VkBool32(VK_TRUE)
        var coop2 = WanPhysicalDeviceCooperativeMatrix2FeaturesNV()
        coop2.sType = VkStructureType(rawValue: UInt32(WAN_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_2_FEATURES_NV))
        for flag in [\WanPhysicalDeviceCooperativeMatrix2FeaturesNV.cooperativeMatrixWorkgroupScope,
                     \.cooperativeMatrixFlexibleDimensions, \.cooperativeMatrixPerElementOperations,
                     \.cooperativeMatrixTensorAddressing, \.cooperativeMatrixBlockLoads] {
            coop2[keyPath: flag] = VkBool32(VK_TRUE)
        }
        // Row reductions and use conversions (the coopmat2 attention's softmax) where the device has them.
        coop2.cooperativeMatrixReductions = VkBool32(caps.cooperativeMatrix2?.reductions == true ? VK_TRUE : VK_FALSE)
        coop2.cooperativeMatrixConversions = VkBool32(caps.cooperativeMatrix2?.conversions == true ? VK_TRUE : VK_FALSE)
        // The coopmat2 shaders are SPIR-V 1.6, whose workgroup size from a specialization constant (LocalSizeId)
        // needs maintenance4 (core and required in Vulkan 1.3, which coopmat2 requires).
        var f13 = VkPhysicalDeviceVulkan13Features()
        f13.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES
        f13.maintenance4 = VkBool32(VK_TRUE)
        var priority: Float = 1
        return withUnsafeMutablePointer(to: &f13) { f13Ptr in
        withUnsafeMutablePointer(to: &coop2) { cm2Ptr in
        withUnsafeMutablePointer(to: &coopKHR) { khrPtr in
            khrPtr.pointee.pNext = cm2 ? UnsafeMutableRawPointer(cm2Ptr) : nil
            return withUnsafeMutablePointer(to: &coop) { coopPtr in
                coopPtr.pointee.pNext = khr ? UnsafeMutableRawPointer(khrPtr) : nil
                let tail: UnsafeMutableRawPointer? = nv ? UnsafeMutableRawPointer(coopPtr) : (khr ? UnsafeMutableRawPointer(khrPtr) : nil)
                f13Ptr.pointee.pNext = tail
                return withUnsafeMutablePointer(to: &f12) { f12Ptr in
                    f12Ptr.pointee.pNext = cm2 ? UnsafeMutableRawPointer(f13Ptr) : tail
                    return withUnsafeMutablePointer(to: &f11) { f11Ptr in
                        f11Ptr.pointee.pNext = UnsafeMutableRawPointer(f12Ptr)
                        return withUnsafeMutablePointer(to: &f2) { f2Ptr in
                            f2Ptr.pointee.pNext = UnsafeMutableRawPointer(f11Ptr)
                            return withUnsafePointer(to: &priority) { prio in
                                var qci = VkDeviceQueueCreateInfo()
                                qci.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO
                                qci.queueFamilyIndex = family
                                qci.queueCount = 1
                                qci.pQueuePriorities = prio
                                return withUnsafePointer(to: &qci) { qciPtr in
                                    withCStrings(enabledExts) { extPtrs in
                                        var ci = VkDeviceCreateInfo()
                                        ci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO
                                        ci.pNext = UnsafeRawPointer(f2Ptr)
                                        ci.queueCreateInfoCount = 1
                                        ci.pQueueCreateInfos = qciPtr
                                        ci.enabledExtensionCount = UInt32(enabledExts.count)
                                        ci.ppEnabledExtensionNames = extPtrs
                                        return vkCreateDevice(pd, &ci, nil, &device)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        }
        }
    }

    deinit {
        vkDeviceWaitIdle(handle)
        savePipelineCache()
        for p in pipelines.values { vkDestroyPipeline(handle, p, nil) }
        for m in modules.values { vkDestroyShaderModule(handle, m, nil) }
        allocator.destroyAll()
        if let pipelineCache { vkDestroyPipelineCache(handle, pipelineCache, nil) }
        vkDestroyPipelineLayout(handle, pipelineLayout, nil)
        vkDestroyDevice(handle, nil)
    }

    // MARK: pipelines

    /// The compute pipeline for a shader (base64 SPIR-V) with the given specialization constants
    /// (ids 0, 1, 2, … in order), created on first use and kept for the device's lifetime.
    func pipeline(shader name: String, spirv: String, constants: [UInt32]) throws -> VkPipeline {
        lock.lock()
        defer { lock.unlock() }
        let key = PipelineKey(shader: name, constants: constants)
        if let p = pipelines[key] { return p }
        let module: VkShaderModule
        if let m = modules[name] {
            module = m
        } else {
            guard let data = Data(base64Encoded: spirv), data.count % 4 == 0, !data.isEmpty else {
                throw RuntimeError.invalidState("embedded SPIR-V of \(name) is corrupt")
            }
            var m: VkShaderModule?
            let r: VkResult = data.withUnsafeBytes { raw in
                var ci = VkShaderModuleCreateInfo()
                ci.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO
                ci.codeSize = data.count
                ci.pCode = raw.bindMemory(to: UInt32.self).baseAddress
                return vkCreateShaderModule(handle, &ci, nil, &m)
            }
            try vkCheck(r, "vkCreateShaderModule(\(name))")
            module = m!
            modules[name] = module
        }
        var entries = constants.indices.map { i -> VkSpecializationMapEntry in
            VkSpecializationMapEntry(constantID: UInt32(i), offset: UInt32(i * 4), size: 4)
        }
        var values = constants
        var pipe: VkPipeline?
        let r: VkResult = entries.withUnsafeMutableBufferPointer { ep in
            values.withUnsafeMutableBytes { vp in
                var spec = VkSpecializationInfo()
                spec.mapEntryCount = UInt32(constants.count)
                spec.pMapEntries = UnsafePointer(ep.baseAddress)
                spec.dataSize = vp.count
                spec.pData = UnsafeRawPointer(vp.baseAddress)
                return withUnsafePointer(to: &spec) { specPtr in
                    "main".withCString { entry in
                        var stage = VkPipelineShaderStageCreateInfo()
                        stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
                        stage.stage = VK_SHADER_STAGE_COMPUTE_BIT
                        stage.module = module
                        stage.pName = entry
                        stage.pSpecializationInfo = constants.isEmpty ? nil : specPtr
                        var ci = VkComputePipelineCreateInfo()
                        ci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
                        ci.stage = stage
                        ci.layout = pipelineLayout
                        return vkCreateComputePipelines(handle, pipelineCache, 1, &ci, nil, &pipe)
                    }
                }
            }
        }
        try vkCheck(r, "vkCreateComputePipelines(\(name), constants \(constants))")
        pipelines[key] = pipe!
        return pipe!
    }

    // MARK: pipeline cache on disk

    private static func openPipelineCache(device: VkDevice, caps: Capabilities, directory: URL?) -> (VkPipelineCache?, URL?) {
        let env = ProcessInfo.processInfo.environment
        var url: URL?
        if env["WAN_PIPELINE_CACHE"] != "0" {
            let dir: URL
            if let directory { dir = directory }
            else if let d = env["WAN_CACHE_DIR"] { dir = URL(fileURLWithPath: d) }
            else if let x = env["XDG_CACHE_HOME"] { dir = URL(fileURLWithPath: x).appendingPathComponent("wan") }
            else { dir = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/wan") }
            let uuid = caps.pipelineCacheUUID.map { String(format: "%02x", $0) }.joined()
            let file = String(format: "pipelines-%04x-%04x-%08x-%@.bin", caps.vendorID, caps.deviceID, caps.driverVersion, uuid)
            url = dir.appendingPathComponent(file)
        }
        let initial = url.flatMap { try? Data(contentsOf: $0) } ?? Data()
        var cache: VkPipelineCache?
        let r: VkResult = initial.withUnsafeBytes { raw in
            var ci = VkPipelineCacheCreateInfo()
            ci.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO
            ci.initialDataSize = raw.count
            ci.pInitialData = raw.baseAddress
            return vkCreatePipelineCache(device, &ci, nil, &cache)
        }
        if r != VK_SUCCESS {
            // A stale or foreign cache file: start empty rather than fail.
            var ci = VkPipelineCacheCreateInfo()
            ci.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO
            if vkCreatePipelineCache(device, &ci, nil, &cache) != VK_SUCCESS { return (nil, nil) }
        }
        return (cache, url)
    }

    /// Writes the pipeline cache to disk (atomically); called on close. Failures are ignored: the cache
    /// only saves compile time.
    public func savePipelineCache() {
        guard let pipelineCache, let url = pipelineCacheURL else { return }
        var size = 0
        guard vkGetPipelineCacheData(handle, pipelineCache, &size, nil) == VK_SUCCESS, size > 0 else { return }
        var data = Data(count: size)
        let r = data.withUnsafeMutableBytes { vkGetPipelineCacheData(handle, pipelineCache, &size, $0.baseAddress) }
        guard r == VK_SUCCESS else { return }
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? data.prefix(size).write(to: url, options: .atomic)
    }

    // MARK: one-off submission

    /// Records commands into a fresh command buffer, submits it and waits (used for transfers).
    func submitAndWait(_ record: (VkCommandBuffer) throws -> Void) throws {
        let (pool, cmd) = try makeCommandBuffer()
        defer { destroyCommandPool(pool) }
        var bi = VkCommandBufferBeginInfo()
        bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT.rawValue
        try vkCheck(vkBeginCommandBuffer(cmd, &bi), "vkBeginCommandBuffer")
        try record(cmd)
        try vkCheck(vkEndCommandBuffer(cmd), "vkEndCommandBuffer")
        let fence = try makeFence()
        defer { vkDestroyFence(handle, fence, nil) }
        try submit(cmd, fence: fence)
        try wait(fence)
    }

    /// A command pool with one primary command buffer. Each recorder owns its own pool, because
    /// Vulkan requires a pool (and its buffers) to be recorded from one thread at a time.
    func makeCommandBuffer() throws -> (VkCommandPool, VkCommandBuffer) {
        var pci = VkCommandPoolCreateInfo()
        pci.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO
        pci.queueFamilyIndex = queueFamily
        var pool: VkCommandPool?
        try vkCheck(vkCreateCommandPool(handle, &pci, nil, &pool), "vkCreateCommandPool")
        guard let pool else { throw RuntimeError.vulkan(call: "vkCreateCommandPool", result: -3) }
        var ai = VkCommandBufferAllocateInfo()
        ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        ai.commandPool = pool
        ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        ai.commandBufferCount = 1
        var cmd: VkCommandBuffer?
        let r = vkAllocateCommandBuffers(handle, &ai, &cmd)
        guard r == VK_SUCCESS, let cmd else {
            vkDestroyCommandPool(handle, pool, nil)
            throw RuntimeError.vulkan(call: "vkAllocateCommandBuffers", result: r.rawValue)
        }
        return (pool, cmd)
    }

    /// Destroys a pool made by `makeCommandBuffer` (and its command buffer).
    func destroyCommandPool(_ pool: VkCommandPool) {
        vkDestroyCommandPool(handle, pool, nil)
    }

    func makeFence() throws -> VkFence {
        var fci = VkFenceCreateInfo()
        fci.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO
        var fence: VkFence?
        try vkCheck(vkCreateFence(handle, &fci, nil, &fence), "vkCreateFence")
        return fence!
    }

    func submit(_ cmd: VkCommandBuffer, fence: VkFence) throws {
        lock.lock()
        defer { lock.unlock() }
        var c: VkCommandBuffer? = cmd
        let r: VkResult = withUnsafePointer(to: &c) { cp in
            var si = VkSubmitInfo()
            si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO
            si.commandBufferCount = 1
            si.pCommandBuffers = cp
            return vkQueueSubmit(queue, 1, &si, fence)
        }
        try vkCheck(r, "vkQueueSubmit")
    }

    func wait(_ fence: VkFence) throws {
        var f: VkFence? = fence
        while true {
            let r = vkWaitForFences(handle, 1, &f, VkBool32(VK_TRUE), 1_000_000_000)
            if r == VK_TIMEOUT { continue }
            try vkCheck(r, "vkWaitForFences")
            return
        }
    }
}
