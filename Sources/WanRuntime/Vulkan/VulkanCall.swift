import CVulkan
import Foundation

/// Checks a `VkResult`, turning failures into `RuntimeError.vulkan` that names the call.
@inline(__always)
func vkCheck(_ result: VkResult, _ call: @autoclosure () -> String) throws {
    if result.rawValue < 0 { throw RuntimeError.vulkan(call: call(), result: result.rawValue) }
}

/// `VK_MAKE_API_VERSION` (function-like macros do not import into Swift).
func vkMakeAPIVersion(_ variant: UInt32, _ major: UInt32, _ minor: UInt32, _ patch: UInt32) -> UInt32 {
    (variant << 29) | (major << 22) | (minor << 12) | patch
}

/// "major.minor.patch" of a packed Vulkan version.
func vkVersionString(_ v: UInt32) -> String { "\((v >> 22) & 0x7f).\((v >> 12) & 0x3ff).\(v & 0xfff)" }

/// Reads a fixed-size C char tuple (imported as a tuple) as a Swift string.
func vkString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Copies a fixed-size C tuple of `U` into an array.
func vkArray<T, U>(_ tuple: T, as: U.Type, count: Int) -> [U] {
    withUnsafeBytes(of: tuple) { raw in Array(raw.bindMemory(to: U.self).prefix(count)) }
}

/// Runs `body` with C string pointers for the given strings (valid only inside the closure).
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) throws -> R) rethrows -> R {
    let dup = strings.map { UnsafePointer(strdup($0)) }
    defer { dup.forEach { free(UnsafeMutablePointer(mutating: $0)) } }
    return try dup.withUnsafeBufferPointer { try body($0.baseAddress) }
}
