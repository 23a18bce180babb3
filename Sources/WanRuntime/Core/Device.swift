import CVulkan
import Foundation

/// A compute device: the CPU (OpenBLAS + Swift) or a Vulkan device. Every kernel runs on both
/// through the same `CommandList` API.
public final class Device: @unchecked Sendable, CustomStringConvertible {
    enum Backend {
        case cpu(CPUDevice)
        case vulkan(VulkanDevice)
    }

    let backend: Backend
    /// A short name: `cpu` or `vulkan:N`.
    public let name: String

    private init(backend: Backend, name: String) {
        self.backend = backend
        self.name = name
    }

    public var description: String { "\(name) (\(label))" }

    /// Human-readable description of the hardware.
    public var label: String {
        switch backend {
        case let .cpu(c): return c.label
        case let .vulkan(v): return v.capabilities.deviceName
        }
    }

    /// The Vulkan device behind this device, if any.
    public var vulkan: VulkanDevice? {
        if case let .vulkan(v) = backend { return v }
        return nil
    }

    /// Whether this is the CPU device.
    public var isCPU: Bool { vulkan == nil }

    /// `WAN_POISON=1`: new CPU tensors (and Vulkan tensors in mappable memory) are filled with NaN bytes, so that a kernel reading memory it did not
    /// write shows up as NaN in its results (a debugging aid).
    static let poison = ProcessInfo.processInfo.environment["WAN_POISON"] == "1"

    /// The CPU device (OpenBLAS for GEMM, Swift SIMD elsewhere); one shared instance.
    public static func cpu() -> Device { sharedCPU }
    private static let sharedCPU = Device(backend: .cpu(CPUDevice.shared), name: "cpu")

    /// Opens Vulkan physical device `index` (validation: the Khronos layer; nil reads `WAN_VK_VALIDATION`).
    public static func vulkan(_ index: Int, validation: Bool? = nil, options: VulkanOptions = VulkanOptions()) throws -> Device {
        let instance = try VulkanInstance.get(validation: validation)
        let v = try VulkanDevice(index: index, instance: instance, options: options)
        let device = Device(backend: .vulkan(v), name: "vulkan:\(index)")
        // Where NV cooperative matrices exist, which accumulator layout they have (one 32-invocation dispatch):
        // the register-softmax attention needs NVIDIA's mma layout. A failed probe only leaves it off.
        if CoopmatAPI.nv.available(v.capabilities) {
            v.accumulatorRowBit = (try? CoopmatLayoutProbe.run(device, emulation: nil)).flatMap(CoopmatLayoutProbe.rowBit)
        }
        return device
    }

    /// Opens the device a selector names: `cpu`, `vulkan:N` (or `vulkan` for 0), or `auto` (the first
    /// discrete, then integrated, then virtual GPU; the CPU when only software Vulkan exists, since
    /// OpenBLAS is far faster than a CPU Vulkan driver). `options` apply to a Vulkan device (e.g. a memory budget).
    public static func open(_ selector: String, validation: Bool? = nil, options: VulkanOptions = VulkanOptions()) throws -> Device {
        let s = selector.lowercased()
        if s == "cpu" { return cpu() }
        if s == "vulkan" { return try vulkan(0, validation: validation, options: options) }
        if s.hasPrefix("vulkan:") {
            guard let i = Int(s.dropFirst("vulkan:".count)), i >= 0 else {
                throw RuntimeError.noSuchDevice("'\(selector)': expected vulkan:N with N = 0, 1, ...")
            }
            return try vulkan(i, validation: validation, options: options)
        }
        if s == "auto" {
            guard let list = try? enumerateVulkan() else { return cpu() }
            for kind in ["discrete", "integrated", "virtual"] {
                if let d = list.first(where: { $0.capabilities.deviceType == kind }) {
                    return try vulkan(d.index, validation: validation, options: options)
                }
            }
            return cpu()
        }
        throw RuntimeError.noSuchDevice("'\(selector)': expected cpu, auto, vulkan or vulkan:N")
    }

    /// One Vulkan physical device as enumeration reports it.
    public struct VulkanDeviceInfo: Sendable {
        public var index: Int
        public var capabilities: Capabilities
    }

    /// Every Vulkan physical device with its capabilities (without opening it).
    public static func enumerateVulkan(validation: Bool? = nil) throws -> [VulkanDeviceInfo] {
        let instance = try VulkanInstance.get(validation: validation)
        return try instance.physicalDevices().enumerated().map {
            VulkanDeviceInfo(index: $0.offset, capabilities: VulkanDevice.queryCapabilities($0.element, instance: instance))
        }
    }

    // MARK: tensors

    /// A tensor with uninitialised contents, in device memory or (`.host`) in host memory the device reads
    /// over the bus (a Vulkan device's host-visible memory; on the CPU both are the same).
    public func empty(_ shape: [Int], dtype: DType = .f32, residence: MemoryResidence = .device) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw RuntimeError.invalidArgument("negative dimension in \(shape)") }
        let bytes = Shape.count(shape) * dtype.size
        switch backend {
        case .cpu:
            guard let p = CPUMemory.shared.allocate(bytes) else {
                throw RuntimeError.outOfDeviceMemory(requested: bytes, detail: "the system has no host memory left for a CPU tensor")
            }
            if Device.poison { p.initializeMemory(as: UInt8.self, repeating: 0xFF, count: max(bytes, 64)) }
            return Tensor(storage: Storage(device: self, byteCount: bytes, backing: .cpu(p)), dtype: dtype, shape: shape)
        case let .vulkan(v):
            let a = try v.allocator.allocate(bytes, kind: residence == .host ? .staging : .device)
            if Device.poison, let m = a.mapped { m.initializeMemory(as: UInt8.self, repeating: 0xFF, count: bytes) }
            return Tensor(storage: Storage(device: self, byteCount: bytes, backing: .vulkan(a)), dtype: dtype, shape: shape)
        }
    }

    /// A tensor of zeros.
    public func zeros(_ shape: [Int], dtype: DType = .f32) throws -> Tensor {
        let t = try empty(shape, dtype: dtype)
        try fill(t, byte: 0)
        return t
    }

    /// A tensor holding `values` converted to `dtype` (on the host, round to nearest even), in device or host memory.
    public func tensor(_ values: [Float], shape: [Int], dtype: DType = .f32, residence: MemoryResidence = .device) throws -> Tensor {
        guard Shape.count(shape) == values.count else {
            throw RuntimeError.shapeMismatch("\(values.count) values for shape \(shape)")
        }
        let t = try empty(shape, dtype: dtype, residence: residence)
        try write(HostConversion.encode(values, as: dtype), to: t)
        return t
    }

    /// A tensor holding raw little-endian bytes of `dtype` elements, in device or host memory.
    public func tensor(bytes: [UInt8], shape: [Int], dtype: DType, residence: MemoryResidence = .device) throws -> Tensor {
        guard Shape.count(shape) * dtype.size == bytes.count else {
            throw RuntimeError.shapeMismatch("\(bytes.count) bytes for \(dtype) shape \(shape)")
        }
        let t = try empty(shape, dtype: dtype, residence: residence)
        try write(bytes, to: t)
        return t
    }

    /// Copies raw bytes into a dense tensor of this device.
    public func write(_ bytes: [UInt8], to t: Tensor) throws {
        guard t.device === self else { throw RuntimeError.deviceMismatch("\(t) written through \(name)") }
        guard t.isContiguous, bytes.count == t.byteCount else {
            throw RuntimeError.invalidArgument("write needs a dense tensor of \(bytes.count) bytes, got \(t)")
        }
        if bytes.isEmpty { return }
        if let p = t.hostPointer {
            bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            return
        }
        guard case let .vulkan(v) = backend, case let .vulkan(dst) = t.storage.backing else { return }
        try v.stagedCopy(toDevice: dst, offset: t.offset * t.dtype.size, bytes: bytes)
    }

    /// The raw bytes of a dense tensor.
    public func readBytes(_ t: Tensor) throws -> [UInt8] {
        guard t.device === self else { throw RuntimeError.deviceMismatch("\(t) read through \(name)") }
        guard t.isContiguous else { throw RuntimeError.invalidArgument("read needs a dense tensor; copy \(t) first") }
        if t.byteCount == 0 { return [] }
        if let p = t.hostPointer {
            return [UInt8](UnsafeRawBufferPointer(start: p, count: t.byteCount))
        }
        guard case let .vulkan(v) = backend, case let .vulkan(src) = t.storage.backing else { return [] }
        return try v.stagedRead(fromDevice: src, offset: t.offset * t.dtype.size, count: t.byteCount)
    }

    /// The elements of a dense tensor as `Float` (exact for every float dtype).
    public func read(_ t: Tensor) throws -> [Float] {
        HostConversion.decode(try readBytes(t), as: t.dtype)
    }

    /// Fills a tensor's whole storage range with one byte value.
    func fill(_ t: Tensor, byte: UInt8) throws {
        if t.byteCount == 0 { return }
        if let p = t.hostPointer, t.isContiguous {
            p.initializeMemory(as: UInt8.self, repeating: byte, count: t.byteCount)
            return
        }
        guard case let .vulkan(v) = backend, case let .vulkan(a) = t.storage.backing, t.isContiguous else {
            throw RuntimeError.invalidArgument("fill needs a dense tensor")
        }
        let word = UInt32(byte) * 0x0101_0101
        let off = t.offset * t.dtype.size
        guard off % 4 == 0 && t.byteCount % 4 == 0 else {
            try write([UInt8](repeating: byte, count: t.byteCount), to: t)
            return
        }
        try v.submitAndWait { cmd in
            vkCmdFillBuffer(cmd, a.buffer, VkDeviceSize(a.offset + off), VkDeviceSize(t.byteCount), word)
        }
    }

    // MARK: memory statistics

    /// Device memory: reserved from the driver (staging included), in use by device-local tensors, and the peak
    /// of that use (0 for the CPU).
    public var memoryStatistics: (reserved: Int, used: Int, peak: Int) {
        vulkan?.allocator.statistics ?? (0, 0, 0)
    }

    /// Restarts the peak-memory counter at the current use.
    public func resetPeakMemory() { vulkan?.allocator.resetPeak() }

    /// Gives back to the system the host memory the CPU backend keeps for reuse (freed large tensors and
    /// scratch buffers); returns the bytes released. Nothing for a Vulkan device.
    @discardableResult
    public func releaseCachedHostMemory() -> Int {
        guard case .cpu = backend else { return 0 }
        return CPUMemory.shared.releaseKept()
    }
}
