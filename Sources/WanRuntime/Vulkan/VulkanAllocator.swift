import CVulkan
import Foundation

/// One sub-allocation of device memory: a byte range of a block's buffer, with its device address
/// (and host pointer when the memory is mapped).
final class VulkanAllocation: @unchecked Sendable {
    let block: VulkanAllocator.Block
    let offset: Int
    let size: Int
    weak var allocator: VulkanAllocator?

    init(block: VulkanAllocator.Block, offset: Int, size: Int, allocator: VulkanAllocator) {
        self.block = block
        self.offset = offset
        self.size = size
        self.allocator = allocator
    }

    var buffer: VkBuffer { block.buffer }
    var deviceAddress: UInt64 { block.address + UInt64(offset) }
    var mapped: UnsafeMutableRawPointer? { block.mapped.map { $0 + offset } }

    deinit { allocator?.free(self) }
}

/// Sub-allocates tensors from large blocks of device memory (one `VkBuffer` per block, addressed by
/// buffer device address), so a tensor costs no `vkAllocateMemory` call and the number of driver
/// allocations stays small. Requests larger than a block get a block of their own, never beyond
/// `maxMemoryAllocationSize` / `maxBufferSize`. Two pools: device-local memory for tensors and
/// host-visible memory for staging transfers (the same memory on unified devices such as lavapipe).
final class VulkanAllocator: @unchecked Sendable {
    enum Kind { case device, staging }

    final class Block: @unchecked Sendable {
        let memory: VkDeviceMemory
        let buffer: VkBuffer
        let size: Int
        let address: UInt64
        let mapped: UnsafeMutableRawPointer?
        let kind: Kind
        let dedicated: Bool
        /// Free byte ranges, sorted by offset, never adjacent (coalesced).
        var free: [(offset: Int, size: Int)]

        init(memory: VkDeviceMemory, buffer: VkBuffer, size: Int, address: UInt64,
             mapped: UnsafeMutableRawPointer?, kind: Kind, dedicated: Bool) {
            self.memory = memory
            self.buffer = buffer
            self.size = size
            self.address = address
            self.mapped = mapped
            self.kind = kind
            self.dedicated = dedicated
            self.free = [(0, size)]
        }

        var isEmpty: Bool { free.count == 1 && free[0].size == size }
    }

    private let device: VkDevice
    private let caps: Capabilities
    let deviceType: UInt32
    let stagingType: UInt32
    /// Whether tensor memory is host-visible (then transfers need no staging copy).
    let deviceMemoryMapped: Bool
    let blockSize: Int
    static let alignment = 256
    private var blocks: [Block] = []
    private let lock = NSLock()
    private(set) var reservedBytes = 0
    /// Bytes of device-local blocks (what the memory budget limits; staging and host-resident tensors live in
    /// host memory on a discrete GPU).
    private(set) var reservedDeviceBytes = 0
    private(set) var usedBytes = 0
    private(set) var peakUsedBytes = 0

    /// The most bytes that may be reserved from the driver (nil: no limit of ours).
    let budget: Int?

    init(device: VkDevice, physical: VkPhysicalDevice, capabilities caps: Capabilities, forceStaging: Bool,
         budget: Int? = nil) throws {
        if let budget, budget <= 0 {
            throw RuntimeError.invalidArgument("device memory budget must be positive, got \(budget) bytes")
        }
        self.budget = budget
        self.device = device
        self.caps = caps
        var mem = VkPhysicalDeviceMemoryProperties()
        vkGetPhysicalDeviceMemoryProperties(physical, &mem)
        let types = vkArray(mem.memoryTypes, as: VkMemoryType.self, count: Int(mem.memoryTypeCount))
        let local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue
        let visible = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue
        let coherent = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue
        let cached = VK_MEMORY_PROPERTY_HOST_CACHED_BIT.rawValue
        func find(_ want: (UInt32) -> Bool) -> UInt32? {
            types.indices.first { want(types[$0].propertyFlags) }.map(UInt32.init)
        }
        // Tensors: device-local. On a discrete GPU prefer the plain (not host-visible) type, whose
        // heap is the whole VRAM; on unified memory every local type is mappable.
        guard let dt = find({ $0 & local != 0 && $0 & visible == 0 }) ?? find({ $0 & local != 0 }) else {
            throw RuntimeError.missingFeature(device: caps.deviceName, feature: "device-local memory")
        }
        guard let st = find({ $0 & visible != 0 && $0 & coherent != 0 && $0 & cached != 0 })
            ?? find({ $0 & visible != 0 && $0 & coherent != 0 }) else {
            throw RuntimeError.missingFeature(device: caps.deviceName, feature: "host-visible coherent memory")
        }
        deviceType = dt
        stagingType = st
        deviceMemoryMapped = !forceStaging && types[Int(dt)].propertyFlags & visible != 0
            && types[Int(dt)].propertyFlags & coherent != 0
        let env = ProcessInfo.processInfo.environment["WAN_VK_BLOCK_MB"].flatMap(Int.init) ?? 256
        blockSize = min(env << 20, caps.maxMemoryAllocationSize, caps.maxBufferSize)
    }

    /// Largest single tensor this device can hold.
    var maxAllocation: Int { min(caps.maxMemoryAllocationSize, caps.maxBufferSize) }

    /// Allocates `size` bytes (rounded up to the alignment).
    func allocate(_ size: Int, kind: Kind) throws -> VulkanAllocation {
        let size = max(VulkanAllocator.alignment, (size + VulkanAllocator.alignment - 1) / VulkanAllocator.alignment * VulkanAllocator.alignment)
        if size > maxAllocation {
            throw RuntimeError.outOfDeviceMemory(
                requested: size,
                detail: "one tensor may hold at most \(maxAllocation) bytes on \(caps.deviceName) (maxMemoryAllocationSize/maxBufferSize)")
        }
        lock.lock()
        defer { lock.unlock() }
        for block in blocks where block.kind == kind && !block.dedicated {
            if let off = take(size, from: block) { return record(block, off, size) }
        }
        var dedicated = size > blockSize
        if kind == .device, let budget, reservedDeviceBytes + (dedicated ? size : blockSize) > budget {
            // Under a budget, a tensor that fits only without the rest of a shared block gets its own.
            guard reservedDeviceBytes + size <= budget else {
                throw RuntimeError.outOfDeviceMemory(
                    requested: size,
                    detail: "the memory budget of \(budget) bytes on \(caps.deviceName) is spent (\(reservedDeviceBytes) bytes of device memory reserved)")
            }
            dedicated = true
        }
        let block = try makeBlock(size: dedicated ? size : blockSize, kind: kind, dedicated: dedicated)
        blocks.append(block)
        guard let off = take(size, from: block) else {
            throw RuntimeError.invalidState("fresh block could not hold \(size) bytes")
        }
        return record(block, off, size)
    }

    private func record(_ block: Block, _ off: Int, _ size: Int) -> VulkanAllocation {
        // "Used" counts device-local tensors: host-resident tensors and staging buffers are host memory.
        if block.kind == .device {
            usedBytes += size
            peakUsedBytes = max(peakUsedBytes, usedBytes)
        }
        return VulkanAllocation(block: block, offset: off, size: size, allocator: self)
    }

    /// First fit in a block's free list.
    private func take(_ size: Int, from block: Block) -> Int? {
        guard let i = block.free.firstIndex(where: { $0.size >= size }) else { return nil }
        let off = block.free[i].offset
        if block.free[i].size == size { block.free.remove(at: i) }
        else { block.free[i] = (off + size, block.free[i].size - size) }
        return off
    }

    func free(_ a: VulkanAllocation) {
        lock.lock()
        defer { lock.unlock() }
        if a.block.kind == .device { usedBytes -= a.size }
        let block = a.block
        var list = block.free
        let i = list.firstIndex { $0.offset > a.offset } ?? list.count
        list.insert((a.offset, a.size), at: i)
        // Coalesce with the next and previous ranges.
        if i + 1 < list.count && list[i].offset + list[i].size == list[i + 1].offset {
            list[i].size += list[i + 1].size
            list.remove(at: i + 1)
        }
        if i > 0 && list[i - 1].offset + list[i - 1].size == list[i].offset {
            list[i - 1].size += list[i].size
            list.remove(at: i)
        }
        block.free = list
        // Give memory back: dedicated blocks at once, shared blocks when another empty one exists.
        if block.isEmpty {
            let emptyShared = blocks.filter { $0.kind == block.kind && !$0.dedicated && $0.isEmpty }.count
            if block.dedicated || emptyShared > 1 {
                blocks.removeAll { $0 === block }
                destroy(block)
            }
        }
    }

    /// Bytes reserved from the driver (every kind) / in use by device-local tensors / the peak of that use.
    var statistics: (reserved: Int, used: Int, peak: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (reservedBytes, usedBytes, peakUsedBytes)
    }

    func resetPeak() {
        lock.lock()
        peakUsedBytes = usedBytes
        lock.unlock()
    }

    private func makeBlock(size: Int, kind: Kind, dedicated: Bool) throws -> Block {
        var bci = VkBufferCreateInfo()
        bci.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO
        bci.size = VkDeviceSize(size)
        bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_SRC_BIT.rawValue
            | VK_BUFFER_USAGE_TRANSFER_DST_BIT.rawValue | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT.rawValue
        bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE
        var buffer: VkBuffer?
        let br = vkCreateBuffer(device, &bci, nil, &buffer)
        if br == VK_ERROR_OUT_OF_DEVICE_MEMORY || br == VK_ERROR_OUT_OF_HOST_MEMORY {
            throw RuntimeError.outOfDeviceMemory(requested: size, detail: "vkCreateBuffer: \(VulkanResultName.name(br.rawValue))")
        }
        try vkCheck(br, "vkCreateBuffer(\(size) bytes)")
        guard let buffer else { throw RuntimeError.vulkan(call: "vkCreateBuffer", result: -3) }
        var req = VkMemoryRequirements()
        vkGetBufferMemoryRequirements(device, buffer, &req)
        let typeIndex = kind == .device ? deviceType : stagingType
        guard req.memoryTypeBits & (1 << typeIndex) != 0 else {
            vkDestroyBuffer(device, buffer, nil)
            throw RuntimeError.missingFeature(device: caps.deviceName, feature: "storage buffers in memory type \(typeIndex)")
        }
        var flags = VkMemoryAllocateFlagsInfo()
        flags.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO
        flags.flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT.rawValue
        var memory: VkDeviceMemory?
        let mr: VkResult = withUnsafePointer(to: &flags) { fp in
            var ai = VkMemoryAllocateInfo()
            ai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO
            ai.pNext = UnsafeRawPointer(fp)
            ai.allocationSize = req.size
            ai.memoryTypeIndex = typeIndex
            return vkAllocateMemory(device, &ai, nil, &memory)
        }
        if mr != VK_SUCCESS {
            vkDestroyBuffer(device, buffer, nil)
            if mr == VK_ERROR_OUT_OF_DEVICE_MEMORY || mr == VK_ERROR_OUT_OF_HOST_MEMORY {
                throw RuntimeError.outOfDeviceMemory(
                    requested: Int(req.size),
                    detail: "vkAllocateMemory: \(VulkanResultName.name(mr.rawValue)); \(reservedBytes) bytes already reserved on \(caps.deviceName)")
            }
            try vkCheck(mr, "vkAllocateMemory(\(req.size) bytes)")
        }
        guard let memory else { throw RuntimeError.vulkan(call: "vkAllocateMemory", result: -2) }
        do {
            try vkCheck(vkBindBufferMemory(device, buffer, memory, 0), "vkBindBufferMemory")
        } catch {
            vkDestroyBuffer(device, buffer, nil)
            vkFreeMemory(device, memory, nil)
            throw error
        }
        var mapped: UnsafeMutableRawPointer?
        if kind == .staging || deviceMemoryMapped {
            let r = vkMapMemory(device, memory, 0, VkDeviceSize(VK_WHOLE_SIZE), 0, &mapped)
            if r != VK_SUCCESS {
                vkDestroyBuffer(device, buffer, nil)
                vkFreeMemory(device, memory, nil)
                try vkCheck(r, "vkMapMemory")
            }
        }
        var ai = VkBufferDeviceAddressInfo()
        ai.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO
        ai.buffer = buffer
        let address = vkGetBufferDeviceAddress(device, &ai)
        reservedBytes += size
        if kind == .device { reservedDeviceBytes += size }
        return Block(memory: memory, buffer: buffer, size: size, address: address, mapped: mapped,
                     kind: kind, dedicated: dedicated)
    }

    private func destroy(_ b: Block) {
        if b.mapped != nil { vkUnmapMemory(device, b.memory) }
        vkDestroyBuffer(device, b.buffer, nil)
        vkFreeMemory(device, b.memory, nil)
        reservedBytes -= b.size
        if b.kind == .device { reservedDeviceBytes -= b.size }
    }

    func destroyAll() {
        lock.lock()
        defer { lock.unlock() }
        for b in blocks { destroy(b) }
        blocks.removeAll()
    }
}
