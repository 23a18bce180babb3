import CVulkan
import Foundation
import Synchronization

/// The process-wide Vulkan instance, with the Khronos validation layer and a debug messenger when
/// validation is requested (`WAN_VK_VALIDATION=1`, or `validation: true`) and the layer is installed.
public final class VulkanInstance: @unchecked Sendable {
    let handle: VkInstance
    private var messenger: VkDebugUtilsMessengerEXT?
    /// Whether the validation layer is active on this instance.
    public let validationEnabled: Bool
    private let log = Mutex<[String]>([])

    private static let shared = Mutex<[Bool: VulkanInstance]>([:])

    /// The shared instance (one with validation, one without), created on first use.
    public static func get(validation: Bool? = nil) throws -> VulkanInstance {
        let want = validation ?? (ProcessInfo.processInfo.environment["WAN_VK_VALIDATION"] == "1")
        return try shared.withLock { cache in
            if let i = cache[want] { return i }
            let i = try VulkanInstance(validation: want)
            cache[want] = i
            return i
        }
    }

    /// Validation messages (errors and warnings) reported so far.
    public var validationMessages: [String] { log.withLock { $0 } }

    /// Forgets the validation messages reported so far.
    public func clearValidationMessages() { log.withLock { $0.removeAll() } }

    func record(_ message: String) { log.withLock { $0.append(message) } }

    private init(validation: Bool) throws {
        var layerCount: UInt32 = 0
        vkEnumerateInstanceLayerProperties(&layerCount, nil)
        var layers = [VkLayerProperties](repeating: VkLayerProperties(), count: Int(layerCount))
        vkEnumerateInstanceLayerProperties(&layerCount, &layers)
        let layerNames = Set(layers.map { vkString($0.layerName) })
        let useValidation = validation && layerNames.contains("VK_LAYER_KHRONOS_validation")

        var extCount: UInt32 = 0
        vkEnumerateInstanceExtensionProperties(nil, &extCount, nil)
        var exts = [VkExtensionProperties](repeating: VkExtensionProperties(), count: Int(extCount))
        vkEnumerateInstanceExtensionProperties(nil, &extCount, &exts)
        let extNames = Set(exts.map { vkString($0.extensionName) })

        var enabledExts: [String] = []
        if useValidation && extNames.contains("VK_EXT_debug_utils") { enabledExts.append("VK_EXT_debug_utils") }
        if extNames.contains("VK_KHR_portability_enumeration") { enabledExts.append("VK_KHR_portability_enumeration") }
        let enabledLayers = useValidation ? ["VK_LAYER_KHRONOS_validation"] : []

        var app = VkApplicationInfo()
        app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO
        app.apiVersion = vkMakeAPIVersion(0, 1, 3, 0)
        var inst: VkInstance?
        let result: VkResult = "wan".withCString { appName in
            app.pApplicationName = appName
            app.pEngineName = appName
            return withCStrings(enabledExts) { extPtrs in
                withCStrings(enabledLayers) { layerPtrs in
                    withUnsafePointer(to: &app) { appPtr in
                        var ci = VkInstanceCreateInfo()
                        ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
                        ci.pApplicationInfo = appPtr
                        ci.enabledExtensionCount = UInt32(enabledExts.count)
                        ci.ppEnabledExtensionNames = extPtrs
                        ci.enabledLayerCount = UInt32(enabledLayers.count)
                        ci.ppEnabledLayerNames = layerPtrs
                        if enabledExts.contains("VK_KHR_portability_enumeration") {
                            ci.flags = 0x0000_0001 // VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR
                        }
                        return vkCreateInstance(&ci, nil, &inst)
                    }
                }
            }
        }
        if result == VK_ERROR_INCOMPATIBLE_DRIVER || result == VK_ERROR_INITIALIZATION_FAILED {
            throw RuntimeError.vulkanUnavailable("vkCreateInstance returned \(VulkanResultName.name(result.rawValue)) (no Vulkan driver installed?)")
        }
        try vkCheck(result, "vkCreateInstance")
        guard let inst else { throw RuntimeError.vulkanUnavailable("vkCreateInstance returned no instance") }
        handle = inst
        validationEnabled = useValidation
        if useValidation && enabledExts.contains("VK_EXT_debug_utils") { try installMessenger() }
    }

    private func installMessenger() throws {
        guard let fp = vkGetInstanceProcAddr(handle, "vkCreateDebugUtilsMessengerEXT") else { return }
        let create = unsafeBitCast(fp, to: PFN_vkCreateDebugUtilsMessengerEXT?.self)
        var ci = VkDebugUtilsMessengerCreateInfoEXT()
        ci.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT
        ci.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT.rawValue
            | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue
        ci.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT.rawValue
            | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT.rawValue
            | VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT.rawValue
        ci.pfnUserCallback = vulkanDebugCallback
        ci.pUserData = Unmanaged.passUnretained(self).toOpaque()
        var m: VkDebugUtilsMessengerEXT?
        try vkCheck(create?(handle, &ci, nil, &m) ?? VK_ERROR_EXTENSION_NOT_PRESENT, "vkCreateDebugUtilsMessengerEXT")
        messenger = m
    }

    /// The physical devices, in the driver's order (`vulkan:N` indexes this list).
    func physicalDevices() throws -> [VkPhysicalDevice] {
        var count: UInt32 = 0
        try vkCheck(vkEnumeratePhysicalDevices(handle, &count, nil), "vkEnumeratePhysicalDevices")
        var devs = [VkPhysicalDevice?](repeating: nil, count: Int(count))
        try vkCheck(vkEnumeratePhysicalDevices(handle, &count, &devs), "vkEnumeratePhysicalDevices")
        return devs.compactMap { $0 }
    }
}

private let vulkanDebugCallback: PFN_vkDebugUtilsMessengerCallbackEXT = { severity, _, data, user in
    guard let user, let data else { return VkBool32(VK_FALSE) }
    let instance = Unmanaged<VulkanInstance>.fromOpaque(user).takeUnretainedValue()
    let text = data.pointee.pMessage.map { String(cString: $0) } ?? "(no message)"
    // The loader reports informational lines as warnings on some systems; keep only real findings.
    if text.contains("loader_") || text.contains("Loader Message") { return VkBool32(VK_FALSE) }
    let level = severity.rawValue >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue ? "error" : "warning"
    instance.record("[\(level)] \(text)")
    return VkBool32(VK_FALSE)
}
