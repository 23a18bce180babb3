/// The memory behind one or more tensor views: host memory for the CPU device, a sub-allocation of
/// device memory for a Vulkan device. Freed when the last view goes away.
public final class Storage: @unchecked Sendable {
    enum Backing {
        case cpu(UnsafeMutableRawPointer)
        case vulkan(VulkanAllocation)
    }

    /// Size in bytes.
    public let byteCount: Int
    /// The device that owns the memory (kept alive by the storage).
    public let device: Device
    let backing: Backing

    init(device: Device, byteCount: Int, backing: Backing) {
        self.device = device
        self.byteCount = byteCount
        self.backing = backing
    }

    deinit {
        if case let .cpu(p) = backing { CPUMemory.shared.free(p) }
    }

    /// Host pointer to the first byte, when the memory is host-addressable (CPU, unified Vulkan memory).
    var hostPointer: UnsafeMutableRawPointer? {
        switch backing {
        case let .cpu(p): return p
        case let .vulkan(a): return a.mapped
        }
    }

    /// Where the memory lives: host memory the device reads over the bus (`.host`), or device memory. CPU
    /// memory counts as `.device` (it is the CPU device's own memory).
    public var residence: MemoryResidence {
        if case let .vulkan(a) = backing, a.block.kind == .staging { return .host }
        return .device
    }

    /// Device address of the first byte (Vulkan only).
    var deviceAddress: UInt64 {
        if case let .vulkan(a) = backing { return a.deviceAddress }
        return 0
    }
}
