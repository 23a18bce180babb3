import CVulkan
import Foundation

/// A compute shader the runtime can dispatch: its name and embedded SPIR-V.
struct Kernel: Sendable {
    let name: String
    let spirv: String
}

/// Records dispatches into one Vulkan command buffer. Tracks which storage byte ranges were written
/// or read since the last barrier and inserts a memory barrier only when a dispatch reads what an
/// earlier one wrote (RAW) or writes what an earlier one read or wrote (WAR/WAW).
final class VulkanRecorder: @unchecked Sendable {
    let device: VulkanDevice
    let pool: VkCommandPool
    let cmd: VkCommandBuffer
    let fence: VkFence
    let profile: Bool
    private var queryPool: VkQueryPool?
    static let maxTimedDispatches = 4096
    private var labels: [String] = []
    private(set) var dispatchCount = 0
    private(set) var barrierCount = 0
    private var recording = true
    private var pending = false
    private var retained: [ObjectIdentifier: Storage] = [:]
    private var written: [(ObjectIdentifier, Range<Int>)] = []
    private var read: [(ObjectIdentifier, Range<Int>)] = []
    private var boundPipeline: VkPipeline?
    /// A lower cap on `maxGroups` (tests set it so that workgroups loop over several tiles on small inputs).
    var gridCap = Int.max
    /// The fp32 state that split-key attentions carry between their dispatches (CPU drivers): one buffer per list,
    /// reused by every attention recorded into it (barriers order them), replaced by a larger one when needed.
    private var attentionState: Tensor?

    /// A state buffer of at least `floats` fp32 values for a split-key attention (see `attentionState`).
    func attentionState(floats: Int, device owner: Device) throws -> Tensor {
        if let s = attentionState, s.count >= floats { return s }
        let s = try owner.empty([floats])
        attentionState = s
        return s
    }

    init(device: VulkanDevice, profile: Bool) throws {
        self.device = device
        self.profile = profile && device.capabilities.timestampSupported
        (pool, cmd) = try device.makeCommandBuffer()
        fence = try device.makeFence()
        if self.profile {
            var qci = VkQueryPoolCreateInfo()
            qci.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO
            qci.queryType = VK_QUERY_TYPE_TIMESTAMP
            qci.queryCount = UInt32(2 * VulkanRecorder.maxTimedDispatches)
            var qp: VkQueryPool?
            try vkCheck(vkCreateQueryPool(device.handle, &qci, nil, &qp), "vkCreateQueryPool")
            queryPool = qp
        }
        var bi = VkCommandBufferBeginInfo()
        bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        try vkCheck(vkBeginCommandBuffer(cmd, &bi), "vkBeginCommandBuffer")
        if let queryPool {
            vkCmdResetQueryPool(cmd, queryPool, 0, UInt32(2 * VulkanRecorder.maxTimedDispatches))
        }
        // Order this list after everything submitted before it on the queue.
        barrier(force: true)
        barrierCount = 0
    }

    deinit {
        if pending { _ = try? device.wait(fence) }
        vkDestroyFence(device.handle, fence, nil)
        if let queryPool { vkDestroyQueryPool(device.handle, queryPool, nil) }
        device.destroyCommandPool(pool)
    }

    private func barrier(force: Bool = false) {
        var mb = VkMemoryBarrier()
        mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue
        mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue
            | VK_ACCESS_TRANSFER_READ_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue
        let stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue
        vkCmdPipelineBarrier(cmd, stages, stages, 0, 1, &mb, 0, nil, 0, nil)
        barrierCount += 1
        written.removeAll(keepingCapacity: true)
        read.removeAll(keepingCapacity: true)
    }

    private func touches(_ list: [(ObjectIdentifier, Range<Int>)], _ t: Tensor) -> Bool {
        let id = ObjectIdentifier(t.storage)
        let r = t.byteRange
        return list.contains { $0.0 == id && $0.1.overlaps(r) }
    }

    /// Declares the accesses of the next command, inserting a barrier if it depends on earlier ones.
    private func track(reads: [Tensor], writes: [Tensor]) throws {
        guard recording else { throw RuntimeError.invalidState("command list already submitted; record a new one") }
        let hazard = reads.contains { touches(written, $0) }
            || writes.contains { touches(written, $0) || touches(read, $0) }
        if hazard { barrier() }
        for t in reads {
            read.append((ObjectIdentifier(t.storage), t.byteRange))
            retained[ObjectIdentifier(t.storage)] = t.storage
        }
        for t in writes {
            written.append((ObjectIdentifier(t.storage), t.byteRange))
            retained[ObjectIdentifier(t.storage)] = t.storage
        }
    }

    /// Records one dispatch of `kernel` with specialization `constants`, push constants and a grid of
    /// workgroups; `reads`/`writes` are the tensors the shader accesses.
    func dispatch(_ kernel: Kernel, constants: [UInt32], push: PushConstants, groups: (Int, Int, Int),
                  reads: [Tensor], writes: [Tensor], label: String? = nil) throws {
        let limits = device.capabilities.maxComputeWorkGroupCount
        guard groups.0 <= limits[0], groups.1 <= limits[1], groups.2 <= limits[2] else {
            throw RuntimeError.invalidArgument("\(kernel.name): grid \(groups) exceeds the device's workgroup count limits \(limits)")
        }
        guard push.bytes.count <= VulkanDevice.pushConstantSize else {
            throw RuntimeError.invalidArgument("\(kernel.name): \(push.bytes.count) bytes of push constants exceed \(VulkanDevice.pushConstantSize)")
        }
        if groups.0 == 0 || groups.1 == 0 || groups.2 == 0 { return }
        let pipeline = try device.pipeline(shader: kernel.name, spirv: kernel.spirv, constants: constants)
        try track(reads: reads, writes: writes)
        if pipeline != boundPipeline {
            vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline)
            boundPipeline = pipeline
        }
        var bytes = push.bytes
        while bytes.count % 4 != 0 { bytes.append(0) }
        if !bytes.isEmpty {
            bytes.withUnsafeBytes {
                vkCmdPushConstants(cmd, device.pipelineLayout, VK_SHADER_STAGE_COMPUTE_BIT.rawValue, 0,
                                   UInt32($0.count), $0.baseAddress)
            }
        }
        timed(label ?? kernel.name) {
            vkCmdDispatch(cmd, UInt32(groups.0), UInt32(groups.1), UInt32(groups.2))
        }
    }

    /// Records `body` between two timestamps when profiling (while query slots last).
    private func timed(_ label: String, _ body: () -> Void) {
        let slot = labels.count
        let on = queryPool != nil && slot < VulkanRecorder.maxTimedDispatches
        if on, let queryPool { vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, queryPool, UInt32(2 * slot)) }
        body()
        if on, let queryPool {
            vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPool, UInt32(2 * slot + 1))
            labels.append(label)
        }
        dispatchCount += 1
    }

    /// Records a buffer-to-buffer copy of a dense byte range (no shader).
    func copyBytes(from src: Tensor, to dst: Tensor, count: Int) throws {
        guard case let .vulkan(a) = src.storage.backing, case let .vulkan(b) = dst.storage.backing else {
            throw RuntimeError.invalidState("copyBytes on non-Vulkan storage")
        }
        try track(reads: [src], writes: [dst])
        var region = VkBufferCopy(srcOffset: VkDeviceSize(a.offset + src.offset * src.dtype.size),
                                  dstOffset: VkDeviceSize(b.offset + dst.offset * dst.dtype.size),
                                  size: VkDeviceSize(count))
        timed("copy \(count) bytes") { vkCmdCopyBuffer(cmd, a.buffer, b.buffer, 1, &region) }
    }

    /// The most workgroups a dispatch puts on `axis` when its shader covers the rest by looping (grid-stride loops,
    /// `linear_id()` over x and y): the device's limit, at most 65535, the count every Vulkan device supports.
    func maxGroups(_ axis: Int) -> Int {
        min(device.capabilities.maxComputeWorkGroupCount[axis], 65535, gridCap)
    }

    /// Workgroups for `n` invocations of `local` threads each, spread over x and y so that no
    /// dimension exceeds the device limit (shaders index with `linear_id()` and bound-check).
    func grid1D(_ n: Int, local: Int) -> (Int, Int, Int) {
        let groups = max(1, (n + local - 1) / local)
        let maxX = maxGroups(0)
        if groups <= maxX { return (groups, 1, 1) }
        return (maxX, (groups + maxX - 1) / maxX, 1)
    }

    func submit() throws {
        if recording {
            // Make the results visible to the host once the fence signals.
            var mb = VkMemoryBarrier()
            mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
            mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue
            mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT.rawValue
            vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue,
                                 VK_PIPELINE_STAGE_HOST_BIT.rawValue, 0, 1, &mb, 0, nil, 0, nil)
            try vkCheck(vkEndCommandBuffer(cmd), "vkEndCommandBuffer")
            recording = false
        }
        if pending { try wait() }
        var f: VkFence? = fence
        try vkCheck(vkResetFences(device.handle, 1, &f), "vkResetFences")
        try device.submit(cmd, fence: fence)
        pending = true
    }

    func wait() throws {
        guard pending else { return }
        try device.wait(fence)
        pending = false
    }

    func timings() throws -> [(label: String, milliseconds: Double)] {
        guard let queryPool, !labels.isEmpty, !recording else { return [] }
        try wait()
        var data = [UInt64](repeating: 0, count: 2 * labels.count)
        let r = data.withUnsafeMutableBytes {
            vkGetQueryPoolResults(device.handle, queryPool, 0, UInt32(2 * labels.count), $0.count, $0.baseAddress, 8,
                                  VK_QUERY_RESULT_64_BIT.rawValue | VK_QUERY_RESULT_WAIT_BIT.rawValue)
        }
        try vkCheck(r, "vkGetQueryPoolResults")
        let period = device.capabilities.timestampPeriodNs
        return labels.indices.map { i in
            (labels[i], Double(data[2 * i + 1] &- data[2 * i]) * period / 1e6)
        }
    }
}
