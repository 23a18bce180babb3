/// Errors raised by the tensor runtime. Every Vulkan failure names the call and its `VkResult`.
public enum RuntimeError: Error, CustomStringConvertible, Equatable {
    /// A Vulkan call returned an error code.
    case vulkan(call: String, result: Int32)
    /// No Vulkan loader, driver or suitable device was found.
    case vulkanUnavailable(String)
    /// The requested device does not exist.
    case noSuchDevice(String)
    /// The device lacks a feature this runtime needs.
    case missingFeature(device: String, feature: String)
    /// A device allocation failed or would exceed a device limit.
    case outOfDeviceMemory(requested: Int, detail: String)
    /// Operands have shapes the operation cannot accept.
    case shapeMismatch(String)
    /// Operands have element types the operation cannot accept.
    case unsupportedDType(String)
    /// An argument is out of range or inconsistent.
    case invalidArgument(String)
    /// Tensors of different devices were mixed in one operation.
    case deviceMismatch(String)
    /// A command list was used in a way its state does not allow.
    case invalidState(String)

    public var description: String {
        switch self {
        case let .vulkan(call, result): return "\(call) failed with \(VulkanResultName.name(result)) (\(result))"
        case let .vulkanUnavailable(why): return "Vulkan is unavailable: \(why)"
        case let .noSuchDevice(what): return "no such device: \(what)"
        case let .missingFeature(device, feature): return "device \(device) lacks \(feature)"
        case let .outOfDeviceMemory(requested, detail):
            return "out of device memory allocating \(requested) bytes: \(detail)"
        case let .shapeMismatch(s): return "shape mismatch: \(s)"
        case let .unsupportedDType(s): return "unsupported dtype: \(s)"
        case let .invalidArgument(s): return "invalid argument: \(s)"
        case let .deviceMismatch(s): return "device mismatch: \(s)"
        case let .invalidState(s): return "invalid state: \(s)"
        }
    }
}

/// Names of `VkResult` codes for error messages.
enum VulkanResultName {
    static func name(_ r: Int32) -> String {
        switch r {
        case 0: return "VK_SUCCESS"
        case 1: return "VK_NOT_READY"
        case 2: return "VK_TIMEOUT"
        case 5: return "VK_INCOMPLETE"
        case -1: return "VK_ERROR_OUT_OF_HOST_MEMORY"
        case -2: return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
        case -3: return "VK_ERROR_INITIALIZATION_FAILED"
        case -4: return "VK_ERROR_DEVICE_LOST"
        case -5: return "VK_ERROR_MEMORY_MAP_FAILED"
        case -6: return "VK_ERROR_LAYER_NOT_PRESENT"
        case -7: return "VK_ERROR_EXTENSION_NOT_PRESENT"
        case -8: return "VK_ERROR_FEATURE_NOT_PRESENT"
        case -9: return "VK_ERROR_INCOMPATIBLE_DRIVER"
        case -10: return "VK_ERROR_TOO_MANY_OBJECTS"
        case -11: return "VK_ERROR_FORMAT_NOT_SUPPORTED"
        case -12: return "VK_ERROR_FRAGMENTED_POOL"
        case -13: return "VK_ERROR_UNKNOWN"
        case -1_000_069_000: return "VK_ERROR_OUT_OF_POOL_MEMORY"
        case -1_000_257_000: return "VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS"
        case -1_000_012_000: return "VK_ERROR_INVALID_SHADER_NV"
        default: return "VkResult"
        }
    }
}
